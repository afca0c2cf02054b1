#!/usr/bin/python3
"""
Independent reference implementation of CLIP's forward pass, for Manyfold's parity test.

Written from the semantics of the published modeling code, not from Manyfold's TypeScript:
  - Hugging Face transformers, src/transformers/models/clip/modeling_clip.py (CLIPVisionEmbeddings,
    CLIPTextEmbeddings, CLIPAttention, CLIPMLP, CLIPEncoderLayer, CLIPTextTransformer, CLIPVisionTransformer,
    CLIPModel.forward) and ACT2FN ('quick_gelu', 'gelu' = exact erf form, 'gelu_new' / 'gelu_pytorch_tanh');
  - open_clip, src/open_clip/transformer.py (VisionTransformer._embeds / _pool, ResidualAttentionBlock,
    Attention with fused in_proj, text_global_pool, build_causal_mask) and model.py (CLIP._encode_text,
    _build_vision_tower: heads = width // head_width, QuickGELU iff quick_gelu).

Everything runs in float64 (weights stored as F32 / F16 / BF16 are widened exactly), so the reference's own
rounding error is ~1e-15 and any difference the parity test sees is the implementation under test.

Usage (Debian's interpreter: python3-torch 1.13, python3-numpy):
  /usr/bin/python3 test/reference/clip_ref.py --checkpoints DIR --out test/fixtures/clip/reference.json
      DIR holds one sub-directory per variant (npx tsx test/reference/build-checkpoints.ts --out DIR)
  /usr/bin/python3 test/reference/clip_ref.py --self-check DIR
      checks the reference against itself: a plain-numpy block, causal-mask and padding invariants, finite
      differences of the pixel gradient, and the two layouts of one checkpoint agreeing

The inputs are defined in closed form (pixels_u8, TEXT_TEMPLATES) so the TypeScript test regenerates them
without reading Python; the fixture also stores them (ids literally, pixels as a checksum) to catch drift.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch

FORMAT = 'manyfold-clip-reference/1'
MAX_HEADER_BYTES = 100 * 1024 * 1024
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
N_IMAGES = 4
# the pixel-gradient subset: this many flat indices per image, evenly strided (see grad_indices)
GRAD_SAMPLES = 384


class RefError(Exception):
    """A checkpoint the reference refuses; the message names the file and tensor."""


# ------------------------------------------------------------------------------------------------- safetensors

def _np_dtype(dtype, file, name):
    if dtype == 'F32':
        return np.dtype('<f4'), 4
    if dtype == 'F16':
        return np.dtype('<f2'), 2
    if dtype == 'BF16':
        return np.dtype('<u2'), 2
    if dtype == 'F64':
        return np.dtype('<f8'), 8
    if dtype == 'I64':
        return np.dtype('<i8'), 8
    raise RefError(f'{file}: tensor {name}: unsupported dtype {dtype!r}')


def read_safetensors(file):
    """name -> (dtype string, numpy array: float64 for float dtypes, int64 for I64), parsed by hand."""
    with open(file, 'rb') as f:
        blob = f.read()
    base = os.path.basename(file)
    if len(blob) < 8:
        raise RefError(f'{base}: shorter than the 8-byte header length')
    (n,) = struct.unpack('<Q', blob[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(blob):
        raise RefError(f'{base}: header length {n} exceeds the bound or the file ({len(blob)} bytes)')
    header = json.loads(blob[8:8 + n].decode('utf-8'))
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        dt, size = _np_dtype(info['dtype'], base, name)
        shape = [int(s) for s in info['shape']]
        begin, end = (int(x) for x in info['data_offsets'])
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= begin <= end <= len(data)) or end - begin != count * size:
            raise RefError(f'{base}: tensor {name}: byte range [{begin}, {end}) does not hold {shape} x {size} B')
        raw = np.frombuffer(data[begin:end], dtype=dt).reshape(shape)
        if info['dtype'] == 'BF16':
            # bfloat16 is the upper half of an IEEE float32: shift it back into place
            arr = (raw.reshape(-1).astype(np.uint32) << 16).view(np.float32).astype(np.float64).reshape(shape)
        elif info['dtype'] == 'I64':
            arr = raw.astype(np.int64)
        else:
            arr = raw.astype(np.float64)
        out[name] = (info['dtype'], arr)
    return out


def sha256_file(file):
    h = hashlib.sha256()
    with open(file, 'rb') as f:
        h.update(f.read())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------- checkpoints

class Weights:
    """Tensors by name; every float tensor must be consumed exactly once, so an unexpected key is an error."""

    def __init__(self, tensors, file, prefix=''):
        self.file = file
        self.t = {}
        for name, (dtype, arr) in tensors.items():
            if prefix and not name.startswith(prefix):
                raise RefError(f'{file}: tensor {name}: expected every key to start with {prefix!r}')
            key = name[len(prefix):]
            if dtype == 'I64':
                # HF's position_ids buffers: arange, never a weight
                if not key.endswith('position_ids'):
                    raise RefError(f'{file}: tensor {name}: unexpected integer tensor')
                continue
            self.t[key] = arr
        self.used = set()

    def get(self, name, shape):
        if name not in self.t:
            raise RefError(f'{self.file}: tensor {name}: missing')
        a = self.t[name]
        if list(a.shape) != list(shape):
            raise RefError(f'{self.file}: tensor {name}: shape {list(a.shape)}, expected {list(shape)}')
        self.used.add(name)
        return torch.from_numpy(np.ascontiguousarray(a))

    def check_all_used(self):
        extra = sorted(set(self.t) - self.used)
        if extra:
            raise RefError(f'{self.file}: unexpected tensors: {", ".join(extra[:8])}')


def _read_json(path, read_files):
    with open(path, 'r', encoding='utf-8') as f:
        obj = json.load(f)
    read_files.append(path)
    return obj


def _load_safetensors_set(d, single, index, read_files):
    if os.path.exists(os.path.join(d, single)):
        p = os.path.join(d, single)
        read_files.append(p)
        return read_safetensors(p), single
    idx = os.path.join(d, index)
    if not os.path.exists(idx):
        raise RefError(f'{d}: neither {single} nor {index}')
    weight_map = _read_json(idx, read_files)['weight_map']
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        p = os.path.join(d, shard)
        read_files.append(p)
        tensors.update(read_safetensors(p))
    return tensors, index


def load_checkpoint(d):
    """-> (cfg dict, per-tower canonical weights, list of files read)"""
    read_files = []
    if os.path.exists(os.path.join(d, 'config.json')):
        return _load_hf(d, read_files)
    if os.path.exists(os.path.join(d, 'open_clip_config.json')):
        return _load_open_clip(d, read_files)
    raise RefError(f'{d}: neither config.json (Hugging Face) nor open_clip_config.json')


def _block(q, k, v, qb, kb, vb, o, ob, ln1, ln2, fc1, fc1b, fc2, fc2b):
    """One pre-LN block in torch.nn.Linear convention: every weight [out, in], applied as x @ W.T + b."""
    return dict(q=q, k=k, v=v, qb=qb, kb=kb, vb=vb, o=o, ob=ob, ln1=ln1, ln2=ln2, fc1=fc1, fc1b=fc1b, fc2=fc2, fc2b=fc2b)


def _load_hf(d, read_files):
    cfg = _read_json(os.path.join(d, 'config.json'), read_files)
    # CLIPTextConfig / CLIPVisionConfig defaults for keys a config leaves out
    tc = {'vocab_size': 49408, 'hidden_size': 512, 'intermediate_size': 2048, 'num_hidden_layers': 12,
          'num_attention_heads': 8, 'max_position_embeddings': 77, 'hidden_act': 'quick_gelu',
          'layer_norm_eps': 1e-5, 'eos_token_id': 49407, 'bos_token_id': 49406, **cfg.get('text_config', {})}
    vc = {'hidden_size': 768, 'intermediate_size': 3072, 'num_hidden_layers': 12, 'num_attention_heads': 12,
          'image_size': 224, 'patch_size': 32, 'hidden_act': 'quick_gelu', 'layer_norm_eps': 1e-5,
          **cfg.get('vision_config', {})}
    e = int(cfg.get('projection_dim', 512))
    mean, std = OPENAI_MEAN, OPENAI_STD
    pp = os.path.join(d, 'preprocessor_config.json')
    if os.path.exists(pp):
        pre = _read_json(pp, read_files)
        mean, std = pre.get('image_mean', mean), pre.get('image_std', std)
    tensors, wfile = _load_safetensors_set(d, 'model.safetensors', 'model.safetensors.index.json', read_files)
    w = Weights(tensors, wfile)

    def blocks(prefix, width, mlp, depth):
        out = []
        for i in range(depth):
            p = f'{prefix}.encoder.layers.{i}'
            out.append(_block(
                w.get(f'{p}.self_attn.q_proj.weight', [width, width]), w.get(f'{p}.self_attn.k_proj.weight', [width, width]),
                w.get(f'{p}.self_attn.v_proj.weight', [width, width]), w.get(f'{p}.self_attn.q_proj.bias', [width]),
                w.get(f'{p}.self_attn.k_proj.bias', [width]), w.get(f'{p}.self_attn.v_proj.bias', [width]),
                w.get(f'{p}.self_attn.out_proj.weight', [width, width]), w.get(f'{p}.self_attn.out_proj.bias', [width]),
                (w.get(f'{p}.layer_norm1.weight', [width]), w.get(f'{p}.layer_norm1.bias', [width])),
                (w.get(f'{p}.layer_norm2.weight', [width]), w.get(f'{p}.layer_norm2.bias', [width])),
                w.get(f'{p}.mlp.fc1.weight', [mlp, width]), w.get(f'{p}.mlp.fc1.bias', [mlp]),
                w.get(f'{p}.mlp.fc2.weight', [width, mlp]), w.get(f'{p}.mlp.fc2.bias', [width])))
        return out

    wv, mv, size, p = int(vc['hidden_size']), int(vc['intermediate_size']), int(vc['image_size']), int(vc['patch_size'])
    n = (size // p) ** 2
    vision = dict(
        conv=w.get('vision_model.embeddings.patch_embedding.weight', [wv, 3, p, p]),
        cls=w.get('vision_model.embeddings.class_embedding', [wv]),
        pos=w.get('vision_model.embeddings.position_embedding.weight', [n + 1, wv]),
        ln_pre=(w.get('vision_model.pre_layrnorm.weight', [wv]), w.get('vision_model.pre_layrnorm.bias', [wv])),
        blocks=blocks('vision_model', wv, mv, int(vc['num_hidden_layers'])),
        ln_post=(w.get('vision_model.post_layernorm.weight', [wv]), w.get('vision_model.post_layernorm.bias', [wv])),
        # nn.Linear [E, W] applied as x @ W.T
        proj=w.get('visual_projection.weight', [e, wv]).T,
        heads=int(vc['num_attention_heads']), act=vc['hidden_act'], eps=float(vc['layer_norm_eps']),
        size=size, patch=p, mean=[float(x) for x in mean], std=[float(x) for x in std])
    wt, mt, c, vocab = int(tc['hidden_size']), int(tc['intermediate_size']), int(tc['max_position_embeddings']), int(tc['vocab_size'])
    eos = int(tc['eos_token_id'])
    text = dict(
        tok=w.get('text_model.embeddings.token_embedding.weight', [vocab, wt]),
        pos=w.get('text_model.embeddings.position_embedding.weight', [c, wt]),
        blocks=blocks('text_model', wt, mt, int(tc['num_hidden_layers'])),
        ln_final=(w.get('text_model.final_layer_norm.weight', [wt]), w.get('text_model.final_layer_norm.bias', [wt])),
        proj=w.get('text_projection.weight', [e, wt]).T,
        heads=int(tc['num_attention_heads']), act=tc['hidden_act'], eps=float(tc['layer_norm_eps']),
        # transformers 4.31-4.4x: eos_token_id == 2 marks the legacy configs whose EOT is the largest id (argmax);
        # otherwise pool at the first position holding eos_token_id (newer releases test ids.max() == 49407
        # instead, which agrees on every real CLIP vocabulary)
        pooling='argmax' if eos == 2 else 'eos', eos_token_id=eos, context_length=c, vocab_size=vocab)
    logit_scale = float(w.get('logit_scale', []).item())
    w.check_all_used()
    meta = dict(format='hf', embed_dim=e)
    return meta, vision, text, logit_scale, read_files


def _load_open_clip(d, read_files):
    full = _read_json(os.path.join(d, 'open_clip_config.json'), read_files)
    mc = full.get('model_cfg', full)
    pre = full.get('preprocess_cfg', {})
    vc = {'layers': 12, 'width': 768, 'head_width': 64, 'mlp_ratio': 4.0, 'patch_size': 16, 'image_size': 224,
          **mc.get('vision_cfg', {})}
    tc = {'context_length': 77, 'vocab_size': 49408, 'width': 512, 'heads': 8, 'layers': 12, 'mlp_ratio': 4.0,
          'pool_type': 'argmax', **mc.get('text_cfg', {})}
    for key in ('attentional_pool', 'final_ln_after_pool', 'no_ln_pre', 'ls_init_value', 'timm_model_name'):
        if vc.get(key):
            raise RefError(f'open_clip_config.json: vision_cfg.{key} is outside the CLIP ViT the reference implements')
    e = int(mc['embed_dim'])
    act = 'quick_gelu' if mc.get('quick_gelu', False) else 'gelu'
    path = os.path.join(d, 'open_clip_model.safetensors')
    read_files.append(path)
    tensors = read_safetensors(path)
    # DistributedDataParallel checkpoints prefix every key with 'module.'
    prefix = 'module.' if tensors and all(k.startswith('module.') for k in tensors) else ''
    w = Weights(tensors, 'open_clip_model.safetensors', prefix)

    def blocks(prefix_, width, mlp, depth):
        out = []
        for i in range(depth):
            p = f'{prefix_}.resblocks.{i}'
            # in_proj_weight is [3W, W] with rows q | k | v (nn.MultiheadAttention / open_clip Attention)
            qkv = w.get(f'{p}.attn.in_proj_weight', [3 * width, width])
            qkvb = w.get(f'{p}.attn.in_proj_bias', [3 * width])
            q, k, v = qkv.chunk(3, dim=0)
            qb, kb, vb = qkvb.chunk(3, dim=0)
            out.append(_block(
                q, k, v, qb, kb, vb,
                w.get(f'{p}.attn.out_proj.weight', [width, width]), w.get(f'{p}.attn.out_proj.bias', [width]),
                (w.get(f'{p}.ln_1.weight', [width]), w.get(f'{p}.ln_1.bias', [width])),
                (w.get(f'{p}.ln_2.weight', [width]), w.get(f'{p}.ln_2.bias', [width])),
                w.get(f'{p}.mlp.c_fc.weight', [mlp, width]), w.get(f'{p}.mlp.c_fc.bias', [mlp]),
                w.get(f'{p}.mlp.c_proj.weight', [width, mlp]), w.get(f'{p}.mlp.c_proj.bias', [width])))
        return out

    wv, size, p = int(vc['width']), int(vc['image_size']), int(vc['patch_size'])
    mv = int(wv * float(vc['mlp_ratio']))
    n = (size // p) ** 2
    vision = dict(
        conv=w.get('visual.conv1.weight', [wv, 3, p, p]),
        cls=w.get('visual.class_embedding', [wv]),
        pos=w.get('visual.positional_embedding', [n + 1, wv]),
        ln_pre=(w.get('visual.ln_pre.weight', [wv]), w.get('visual.ln_pre.bias', [wv])),
        blocks=blocks('visual.transformer', wv, mv, int(vc['layers'])),
        ln_post=(w.get('visual.ln_post.weight', [wv]), w.get('visual.ln_post.bias', [wv])),
        # open_clip applies the projection as pooled @ proj, proj [W, E]
        proj=w.get('visual.proj', [wv, e]),
        heads=wv // int(vc['head_width']), act=act, eps=1e-5,
        size=size, patch=p, mean=[float(x) for x in pre.get('mean', OPENAI_MEAN)],
        std=[float(x) for x in pre.get('std', OPENAI_STD)])
    wt, c, vocab = int(tc['width']), int(tc['context_length']), int(tc['vocab_size'])
    mt = int(wt * float(tc['mlp_ratio']))
    pool = tc['pool_type']
    if pool not in ('argmax', 'eos'):
        raise RefError(f'open_clip_config.json: text_cfg.pool_type {pool!r} is not a CLIP pooling rule')
    text = dict(
        tok=w.get('token_embedding.weight', [vocab, wt]),
        pos=w.get('positional_embedding', [c, wt]),
        blocks=blocks('transformer', wt, mt, int(tc['layers'])),
        ln_final=(w.get('ln_final.weight', [wt]), w.get('ln_final.bias', [wt])),
        proj=w.get('text_projection', [wt, e]),
        heads=int(tc['heads']), act=act, eps=1e-5,
        pooling=pool, eos_token_id=int(tc['eos_id']) if pool == 'eos' else vocab - 1,
        context_length=c, vocab_size=vocab)
    logit_scale = float(w.get('logit_scale', []).item())
    w.check_all_used()
    meta = dict(format='open_clip', embed_dim=e)
    return meta, vision, text, logit_scale, read_files


# ------------------------------------------------------------------------------------------------- forward pass

def activation(name, x):
    if name == 'quick_gelu':
        return x * torch.sigmoid(1.702 * x)
    if name == 'gelu':
        # exact: 0.5 x (1 + erf(x / sqrt 2)), as torch.nn.GELU() / HF GELUActivation
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ('gelu_new', 'gelu_pytorch_tanh'):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    raise RefError(f'unknown activation {name!r}')


def layer_norm(x, gb, eps):
    g, b = gb
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)  # biased, as torch.nn.LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * g + b


def attention(x, blk, heads, causal):
    bsz, length, width = x.shape
    hd = width // heads
    if hd * heads != width:
        raise RefError(f'width {width} is not divisible by {heads} heads')

    def split(t):
        return t.reshape(bsz, length, heads, hd).transpose(1, 2)

    q = split(x @ blk['q'].T + blk['qb'])
    k = split(x @ blk['k'].T + blk['kb'])
    v = split(x @ blk['v'].T + blk['vb'])
    scores = (q * hd ** -0.5) @ k.transpose(-1, -2)
    if causal:
        # -inf strictly above the diagonal: position i sees 0..i
        mask = torch.full((length, length), float('-inf'), dtype=x.dtype).triu(1)
        scores = scores + mask
    att = torch.softmax(scores, dim=-1) @ v
    return att.transpose(1, 2).reshape(bsz, length, width) @ blk['o'].T + blk['ob']


def block_forward(x, blk, heads, act, eps, causal):
    x = x + attention(layer_norm(x, blk['ln1'], eps), blk, heads, causal)
    h = layer_norm(x, blk['ln2'], eps) @ blk['fc1'].T + blk['fc1b']
    return x + activation(act, h) @ blk['fc2'].T + blk['fc2b']


def image_features(vision, pixels_bhwc):
    """[B, H, W, 3] pixels in [0, 1] -> unnormalised [B, E] (normalisation with the checkpoint's mean / std)"""
    mean = torch.tensor(vision['mean'], dtype=torch.float64)
    std = torch.tensor(vision['std'], dtype=torch.float64)
    x = ((pixels_bhwc - mean) / std).permute(0, 3, 1, 2)  # NCHW as the conv expects
    p = vision['patch']
    x = torch.nn.functional.conv2d(x, vision['conv'], bias=None, stride=p)  # [B, W, g, g]
    x = x.flatten(2).transpose(1, 2)  # [B, g*g, W], row-major over the patch grid
    cls = vision['cls'].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + vision['pos']
    x = layer_norm(x, vision['ln_pre'], vision['eps'])
    for blk in vision['blocks']:
        x = block_forward(x, blk, vision['heads'], vision['act'], vision['eps'], causal=False)
    pooled = layer_norm(x[:, 0, :], vision['ln_post'], vision['eps'])
    return pooled @ vision['proj']


def pool_positions(text, ids):
    if text['pooling'] == 'argmax':
        # the largest id (EOT in CLIP's vocabulary); torch.argmax returns the first maximum
        return ids.argmax(dim=-1)
    hit = (ids == text['eos_token_id']).to(torch.int64)
    if bool((hit.sum(dim=-1) == 0).any()):
        raise RefError(f'a sequence without eos_token_id {text["eos_token_id"]}')
    return hit.argmax(dim=-1)


def text_features(text, ids):
    """ids [B, L] int64 -> unnormalised [B, E]"""
    length = ids.shape[1]
    x = text['tok'][ids] + text['pos'][:length]
    for blk in text['blocks']:
        x = block_forward(x, blk, text['heads'], text['act'], text['eps'], causal=True)
    x = layer_norm(x, text['ln_final'], text['eps'])
    pos = pool_positions(text, ids)
    return x[torch.arange(ids.shape[0]), pos] @ text['proj']


def l2n(x):
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True))


# ------------------------------------------------------------------------------------------------- inputs

def hash32(x):
    """lowbias32 (Chris Wellons) on uint32: exact integer arithmetic, identical in TypeScript with Math.imul."""
    x = np.asarray(x, dtype=np.uint64) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def pixels_u8(n_images, size):
    """[n, size, size, 3] uint8 images of random colour blocks, block edge 2^(b mod 4) pixels for image b (pure
    noise, then coarser), so the images differ in structure and not only in their noise:
    value = lowbias32(b * 2^20 + ((y >> s) * size + (x >> s)) * 3 + c) >> 24 with s = b mod 4"""
    y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing='ij')
    imgs = []
    for b in range(n_images):
        s = b % 4
        key = np.uint64(b) * np.uint64(1 << 20) + (((y >> s) * size + (x >> s)) * 3 + c).astype(np.uint64)
        imgs.append((hash32(key) >> np.uint64(24)).astype(np.uint8))
    return np.stack(imgs)


PIXEL_FORMULA = ('pixel[b, y, x, c] = (lowbias32(b * 2^20 + ((y >>> s) * size + (x >>> s)) * 3 + c) >>> 24) / 255 '
                 'with s = b % 4; lowbias32(x): x ^= x >>> 16; x = imul(x, 0x7feb352d); x ^= x >>> 15; '
                 'x = imul(x, 0x846ca68b); x ^= x >>> 16 (uint32)')

# 'S' = start-of-text id, 'E' = end-of-text id, integers = literal ids; right-padded with 0 to the context length.
# The last template fills the whole context (the truncated-caption case: EOT in the final position).
TEXT_TEMPLATES = [
    ['S', 5, 17, 9, 'E'],
    ['S', 'E'],  # empty caption
    ['S', 12, 0, 0, 7, 3, 'E'],  # id 0 inside the caption is an ordinary token, not padding
    ['S', 4, 4, 'E', 21, 'E', 6],  # a second EOT after the first: both rules pool at the first
    ['S', 'X', 8, 'E'],  # X = the largest id that is not SOT / EOT: above EOT when the vocabulary has added
                         # tokens (hf-f16-gelu-eos has one), where 'argmax' pools at X and 'eos' at EOT; else just
                         # below the specials
    'full',
]


def text_ids(text, sot, eot):
    c = text['context_length']
    rows = []
    for t in TEXT_TEMPLATES:
        if t == 'full':
            row = [sot] + [1 + (7 * i + 3) % 40 for i in range(c - 2)] + [eot]
        else:
            big = text['vocab_size'] - 1 if text['vocab_size'] - 1 > max(sot, eot) else min(sot, eot) - 1
            row = [sot if v == 'S' else eot if v == 'E' else big if v == 'X' else v for v in t]
        rows.append(row + [0] * (c - len(row)))
    for r in rows:
        if max(r) >= text['vocab_size']:
            raise RefError(f'input id {max(r)} outside the vocabulary ({text["vocab_size"]})')
    return rows


def special_ids(d, text):
    """SOT / EOT from the checkpoint's vocab.json when present, else CLIP's convention (the last two ids)."""
    vocab_file = os.path.join(d, 'vocab.json')
    eot, sot = text['vocab_size'] - 1, text['vocab_size'] - 2
    if os.path.exists(vocab_file):
        with open(vocab_file, 'r', encoding='utf-8') as f:
            vocab = json.load(f)
        eot = int(vocab.get('<|endoftext|>', eot))
        sot = int(vocab.get('<|startoftext|>', sot))
    if text['pooling'] == 'eos':
        eot = text['eos_token_id']
    return sot, eot


def grad_indices(per_image):
    """flat indices into one [H, W, 3] image: GRAD_SAMPLES of them, evenly strided with an odd stride so every
    channel and most rows are hit"""
    stride = max(1, per_image // GRAD_SAMPLES) | 1
    return [(7 + i * stride) % per_image for i in range(min(GRAD_SAMPLES, per_image))]


# ------------------------------------------------------------------------------------------------- reference run

def r7(x):
    return float(f'{float(x):.7g}')


def rows7(t):
    return [[r7(v) for v in row] for row in t.tolist()]


def run_variant(d):
    meta, vision, text, logit_scale, read_files = load_checkpoint(d)
    size = vision['size']
    u8 = pixels_u8(N_IMAGES, size)
    px = torch.from_numpy(u8.astype(np.float64) / 255.0).requires_grad_(True)
    sot, eot = special_ids(d, text)
    ids_list = text_ids(text, sot, eot)
    ids = torch.tensor(ids_list, dtype=torch.int64)

    img = l2n(image_features(vision, px))
    with torch.no_grad():
        txt = l2n(text_features(text, ids))
    scale = min(math.exp(logit_scale), 100.0)  # open_clip clamps logit_scale to log(100) when training
    logits = scale * img.detach() @ txt.T

    # attacks differentiate a similarity to fixed text embeddings w.r.t. the [0, 1] pixels
    pair = [i % txt.shape[0] for i in range(N_IMAGES)]
    objective = (img * txt[pair]).sum()
    (grad,) = torch.autograd.grad(objective, px)
    per_image = size * size * 3
    gi = grad_indices(per_image)
    gflat = grad.reshape(N_IMAGES, per_image)

    return {
        'format': meta['format'],
        'files': {os.path.basename(p): sha256_file(p) for p in read_files},
        'config': {
            'imageSize': size, 'patch': vision['patch'], 'embedDim': meta['embed_dim'],
            'contextLength': text['context_length'], 'vocabSize': text['vocab_size'],
            'activation': {'image': vision['act'], 'text': text['act']},
            'textPooling': text['pooling'], 'eosTokenId': text['eos_token_id'],
            'pixelMean': vision['mean'], 'pixelStd': vision['std'], 'lnEps': vision['eps'],
        },
        'inputs': {
            'pixels': {'images': N_IMAGES, 'size': size, 'formula': PIXEL_FORMULA,
                       'sum_u8': int(u8.astype(np.int64).sum()), 'first_u8': [int(v) for v in u8.reshape(-1)[:16]]},
            'sotId': sot, 'eotId': eot,
            'input_ids': ids_list,
            'pooled_positions': [int(v) for v in pool_positions(text, ids)],
        },
        'image_embeds': rows7(img.detach()),
        'text_embeds': rows7(txt),
        'logit_scale': r7(logit_scale),
        'logit_scale_exp': r7(scale),
        'logits_per_image': rows7(logits),
        'pixel_grad': {
            'objective': 'sum_i dot(image_embeds[i], text_embeds_ref[text_index[i]]) w.r.t. pixels in [0, 1]',
            'text_index': pair,
            'indices': gi,
            'norm': [r7(v) for v in gflat.norm(dim=1)],
            'values': rows7(gflat[:, gi]),
        },
    }


def build_fixture(root, out):
    variants = {}
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isdir(d):
            continue
        variants[name] = run_variant(d)
        print(f'{name}: {variants[name]["format"]}, pooled at {variants[name]["inputs"]["pooled_positions"]}',
              file=sys.stderr)
    if not variants:
        raise RefError(f'{root}: no checkpoint directories')
    fixture = {
        'format': FORMAT,
        'generator': 'test/reference/clip_ref.py (float64, torch %s, numpy %s)' % (torch.__version__, np.__version__),
        'regenerate': 'npx tsx test/reference/build-checkpoints.ts --out DIR && '
                      '/usr/bin/python3 test/reference/clip_ref.py --checkpoints DIR --out test/fixtures/clip/reference.json',
        'variants': variants,
    }
    text = json.dumps(fixture, separators=(',', ':'))
    with open(out, 'w', encoding='utf-8') as f:
        f.write(text + '\n')
    print(f'wrote {out} ({len(text)} bytes, {len(variants)} variants)', file=sys.stderr)


# ------------------------------------------------------------------------------------------------- self-check

def numpy_block(x, blk, heads, act, eps, causal):
    """A second, loop-based implementation of one pre-LN block in plain numpy, to cross-check block_forward."""
    x = np.array(x)
    W = {k: (np.array(v) if not isinstance(v, tuple) else tuple(np.array(t) for t in v)) for k, v in blk.items()}

    def ln(v, gb):
        mu = v.mean()
        return (v - mu) / math.sqrt(((v - mu) ** 2).mean() + eps) * gb[0] + gb[1]

    def act_fn(v):
        if act == 'quick_gelu':
            return v / (1.0 + np.exp(-1.702 * v))
        return np.array([0.5 * t * (1.0 + math.erf(t / math.sqrt(2.0))) for t in v])

    bsz, length, width = x.shape
    hd = width // heads
    out = np.empty_like(x)
    for b in range(bsz):
        h = np.stack([ln(x[b, i], W['ln1']) for i in range(length)])
        q, k, v = h @ W['q'].T + W['qb'], h @ W['k'].T + W['kb'], h @ W['v'].T + W['vb']
        ctx = np.zeros((length, width))
        for hh in range(heads):
            sl = slice(hh * hd, (hh + 1) * hd)
            for i in range(length):
                visible = range(i + 1) if causal else range(length)
                s = np.array([q[i, sl] @ k[j, sl] / math.sqrt(hd) for j in visible])
                pr = np.exp(s - s.max())
                pr /= pr.sum()
                ctx[i, sl] = sum(pr[n] * v[j, sl] for n, j in enumerate(visible))
        y = x[b] + ctx @ W['o'].T + W['ob']
        for i in range(length):
            m = act_fn(ln(y[i], W['ln2']) @ W['fc1'].T + W['fc1b'])
            out[b, i] = y[i] + m @ W['fc2'].T + W['fc2b']
    return out


# the parity test's bars (test/model/clip-parity.test.ts): both must hold for every embedding
PARITY_MIN_COS = 0.99999
PARITY_MAX_ABS = 5e-6


def mutant_study(vision, text, ids):
    """Plausible implementation mistakes, each applied to the float64 reference: (name, caught by the parity
    bars?, min cosine, max abs diff). On tiny random checkpoints every image embedding is within ~1% of every
    other, so the cosine bar alone misses some (an activation swap moves the cosine by ~1e-6): the max-abs bar
    is what catches them."""
    size = vision['size']
    px = torch.from_numpy(pixels_u8(N_IMAGES, size).astype(np.float64) / 255.0)
    img0, txt0 = l2n(image_features(vision, px)), l2n(text_features(text, ids))
    other_act = {'gelu': 'gelu_new', 'quick_gelu': 'gelu', 'gelu_new': 'gelu', 'gelu_pytorch_tanh': 'gelu'}

    def score(img=None, txt=None):
        a, r = (img, img0) if img is not None else (txt, txt0)
        cos = (l2n(a) * r).sum(-1).min().item()
        mx = (l2n(a) - r).abs().max().item()
        return cos < PARITY_MIN_COS or mx > PARITY_MAX_ABS, cos, mx

    def img_with(**kw):
        return score(img=image_features({**vision, **kw}, px))

    def txt_with(**kw):
        return score(txt=text_features({**text, **kw}, ids))

    g = globals()
    out = [
        ('image: patch rows / columns swapped', img_with(conv=vision['conv'].transpose(2, 3))),
        ('image: channels BGR', img_with(conv=vision['conv'].flip(1))),
        ('image: no mean / std', img_with(mean=[0.0] * 3, std=[1.0] * 3)),
        ('image: other activation', img_with(act=other_act[vision['act']])),
        ('image: LayerNorm eps 1e-6', img_with(eps=1e-6)),
        ('image: ln_pre skipped', img_with(ln_pre=(torch.ones_like(vision['ln_pre'][0]), torch.zeros_like(vision['ln_pre'][1])))),
        ('text: other activation', txt_with(act=other_act[text['act']])),
        ('text: position embeddings off by one', txt_with(pos=torch.cat([text['pos'][1:], text['pos'][:1]]))),
    ]
    if vision['mean'] != [0.5] * 3:
        out.append(('image: mean = std = 0.5', img_with(mean=[0.5] * 3, std=[0.5] * 3)))
    if text['pooling'] == 'eos':
        # HF's legacy argmax rule instead of eos: it only moves the pooled row where an id above EOT (an added
        # token) precedes EOT, so the mutant is listed only when the inputs tell the two rules apart
        legacy = {**text, 'pooling': 'argmax'}
        if not torch.equal(pool_positions(legacy, ids), pool_positions(text, ids)):
            out.append(('text: argmax pooling instead of eos', txt_with(pooling='argmax')))
    saved_block, saved_pool = g['block_forward'], g['pool_positions']
    try:
        g['block_forward'] = lambda x, blk, h, a, e, causal: saved_block(x, blk, h, a, e, False)
        out.append(('text: no causal mask', txt_with()))
        g['block_forward'] = saved_block
        g['pool_positions'] = lambda t, i: torch.full((i.shape[0],), i.shape[1] - 1, dtype=torch.int64)
        out.append(('text: pooled at the last position', txt_with()))
        g['pool_positions'] = lambda t, i: (i > 0).sum(dim=-1) - 1
        out.append(('text: pooled at the last non-zero id', txt_with()))
    finally:
        g['block_forward'], g['pool_positions'] = saved_block, saved_pool
    return [(what, *res) for what, res in out]


def torch_modules_block(x, blk, heads, act, eps, causal):
    """The same block from PyTorch's own modules (nn.MultiheadAttention with a fused in_proj, as open_clip's
    older releases used, F.layer_norm, F.gelu): a third path that shares no attention or LayerNorm code."""
    F = torch.nn.functional
    width = x.shape[-1]
    mha = torch.nn.MultiheadAttention(width, heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([blk['q'], blk['k'], blk['v']]))
        mha.in_proj_bias.copy_(torch.cat([blk['qb'], blk['kb'], blk['vb']]))
        mha.out_proj.weight.copy_(blk['o'])
        mha.out_proj.bias.copy_(blk['ob'])
    length = x.shape[1]
    mask = torch.full((length, length), float('-inf'), dtype=x.dtype).triu(1) if causal else None
    h = F.layer_norm(x, (width,), blk['ln1'][0], blk['ln1'][1], eps)
    x = x + mha(h, h, h, attn_mask=mask, need_weights=False)[0]
    m = F.linear(F.layer_norm(x, (width,), blk['ln2'][0], blk['ln2'][1], eps), blk['fc1'], blk['fc1b'])
    m = m * torch.sigmoid(1.702 * m) if act == 'quick_gelu' else F.gelu(m)
    return x + F.linear(m, blk['fc2'], blk['fc2b'])


def self_check(root):
    torch.manual_seed(0)
    failures = []

    def check(cond, what):
        print(('ok   ' if cond else 'FAIL ') + what, file=sys.stderr)
        if not cond:
            failures.append(what)

    names = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
    rules_apart = []
    for name in names:
        d = os.path.join(root, name)
        meta, vision, text, logit_scale, _ = load_checkpoint(d)
        # 1. torch block == plain numpy block, both towers (the text one causal)
        for tower, causal in ((vision, False), (text, True)):
            x = torch.randn(2, 5, tower['blocks'][0]['q'].shape[0], dtype=torch.float64)
            a = block_forward(x, tower['blocks'][0], tower['heads'], tower['act'], tower['eps'], causal).numpy()
            b = numpy_block(x.numpy(), tower['blocks'][0], tower['heads'], tower['act'], tower['eps'], causal)
            with torch.no_grad():
                c = torch_modules_block(x, tower['blocks'][0], tower['heads'], tower['act'], tower['eps'], causal).numpy()
            kind = 'text' if causal else 'image'
            check(np.abs(a - b).max() < 1e-10, f'{name}: block 0 ({kind}) == plain numpy (max diff {np.abs(a - b).max():.1e})')
            check(np.abs(a - c).max() < 1e-10, f'{name}: block 0 ({kind}) == torch.nn modules (max diff {np.abs(a - c).max():.1e})')
        # 2. causal mask: tokens after the pooled EOT (padding, a second EOT, anything) cannot change the embedding
        sot, eot = special_ids(d, text)
        ids = torch.tensor(text_ids(text, sot, eot), dtype=torch.int64)
        pos = pool_positions(text, ids)
        changed = ids.clone()
        for r in range(ids.shape[0]):
            tail = changed[r, pos[r] + 1:]
            changed[r, pos[r] + 1:] = (torch.arange(tail.numel()) * 5 + 3) % min(sot, eot)
        check(torch.equal(pool_positions(text, changed), pos), f'{name}: perturbing the tail keeps the pooled positions')
        with torch.no_grad():
            diff = (text_features(text, ids) - text_features(text, changed)).abs().max().item()
            # and a shorter context (HF slices position embeddings) leaves the pooled row alone
            short = text_features(text, ids[:2, :8])
            diff_short = (short - text_features(text, ids[:2])).abs().max().item()
        check(diff < 1e-12, f'{name}: tokens after EOT are irrelevant (max diff {diff:.1e})')
        check(diff_short < 1e-12, f'{name}: trailing padding length is irrelevant (max diff {diff_short:.1e})')
        # ... but a token before EOT does change it (the check above is not vacuous)
        before = ids.clone()
        before[0, 1] = (before[0, 1] + 1) % min(sot, eot)
        with torch.no_grad():
            moved = (text_features(text, ids)[0] - text_features(text, before)[0]).abs().max().item()
        check(moved > 1e-6, f'{name}: a token before EOT matters (max diff {moved:.1e})')
        # 3. the pixel gradient equals central finite differences of the float64 forward
        size = vision['size']
        px = torch.from_numpy(pixels_u8(2, size).astype(np.float64) / 255.0)
        with torch.no_grad():
            tgt = l2n(text_features(text, ids[:2]))

        def f(p):
            return (l2n(image_features(vision, p)) * tgt).sum()

        pg = px.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(pg), pg)
        worst = 0.0
        for flat in (0, 5, 777 % px.numel(), px.numel() // 2 + 1, px.numel() - 1):
            e = torch.zeros_like(px).reshape(-1)
            e[flat] = 1e-6
            e = e.reshape(px.shape)
            with torch.no_grad():
                fd = (f(px + e) - f(px - e)).item() / 2e-6
            gv = g.reshape(-1)[flat].item()
            worst = max(worst, abs(fd - gv) / (abs(gv) + 1e-6))
        check(worst < 1e-5, f'{name}: pixel gradient == finite differences (worst rel err {worst:.1e})')
        # 4. every semantic mistake an implementation could make lands outside the parity test's tolerance
        with torch.no_grad():
            for what, caught, cos, mx in mutant_study(vision, text, ids):
                check(caught, f'{name}: mutant "{what}" fails parity (min cos {cos:.7f}, max abs {mx:.1e})')
                if what == 'text: argmax pooling instead of eos':
                    rules_apart.append(name)
    # 5. the inputs exercise the choice between HF's two pooling rules somewhere (a variant with an added token)
    check(bool(rules_apart), f'argmax and eos pooling differ on the inputs of some eos variant ({", ".join(rules_apart) or "none"})')
    # 6. the exact-erf GELU is not the tanh approximation (their difference is what the 0.99999 bar resolves)
    x = torch.linspace(-4, 4, 1001, dtype=torch.float64)
    gap = (activation('gelu', x) - activation('gelu_new', x)).abs().max().item()
    check(gap > 1e-4, f'gelu (erf) and gelu_new (tanh) differ by {gap:.1e}')
    if failures:
        raise SystemExit(f'{len(failures)} self-check(s) failed')
    print('self-check passed', file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description='CLIP reference forward pass for Manyfold parity fixtures')
    ap.add_argument('--checkpoints', help='directory with one sub-directory per checkpoint variant')
    ap.add_argument('--out', help='fixture JSON to write')
    ap.add_argument('--self-check', metavar='DIR', help='run the reference self-checks on DIR/<variant>/')
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    try:
        if args.self_check:
            self_check(args.self_check)
        elif args.checkpoints and args.out:
            build_fixture(args.checkpoints, args.out)
        else:
            ap.error('give --checkpoints DIR --out FILE, or --self-check DIR')
    except RefError as e:
        raise SystemExit(f'clip_ref: {e}')


if __name__ == '__main__':
    main()
