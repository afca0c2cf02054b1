/**
 * The exit codes of the commands a release gate runs (`manyfold probe`, `manyfold eval --attack`):
 *   0  every --fail-below bar met (or none given)
 *   1  invalid input or an unexpected error (the message names the file / flag)
 *   2  invalid configuration (as every manyfold command)
 *   3  a --fail-below bar is not met
 *   4  the report is partial: the target failed fatally (auth, query budget) before the probe finished
 */
export const EXIT_BARS_FAILED = 3;
export const EXIT_PARTIAL = 4;
