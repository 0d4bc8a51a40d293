#!/usr/bin/python3
"""
Golden fixtures for test/hf-variants.test.ts: tiny random Llama-family models and the logits
an independent reference computes for a fixed prompt.

The reference is the published LlamaForCausalLM / Qwen2ForCausalLM forward pass written out
in plain PyTorch (transformers is not needed): RMSNorm, rotate-half RoPE with the inverse
frequencies of each rope_scaling type, grouped-query attention by repeat_kv, SwiGLU, and the
projection biases. It runs in float64 on the weights as stored (F16 / BF16 values widened),
so it is the exact answer the engine's f32 arithmetic must come within rounding of.

Each variant is written to test/fixtures/hf-variants/<name>/ as config.json, the weights
(model.safetensors, or shards + model.safetensors.index.json, written by hand below: 8-byte
little-endian header length, JSON header, raw little-endian bytes), a character-level
tokenizer.json, optionally generation_config.json, and logits.json (the prompt and the logits
of every position).

Run with Debian's python3-torch:   /usr/bin/python3 scripts/make-fixtures.py
"""
import json
import math
import os
import shutil
import struct
import sys

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'hf-variants')
PROMPT_LEN = 20
SEED = 1234

BASE = dict(
    architectures=['LlamaForCausalLM'], model_type='llama', hidden_act='silu',
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=64, vocab_size=96, max_position_embeddings=256,
    rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
    bos_token_id=1, eos_token_id=2,
)

LLAMA3_SCALING = dict(rope_type='llama3', factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64)

# name -> (config overrides, storage dtype, number of shards, generation_config or None)
VARIANTS = {
    'llama-gqa': (dict(), 'F32', 1, None),
    # rms_norm_eps and rope_theta left out: Hugging Face's defaults (1e-6, 10000) apply
    'llama-mqa-untied': (dict(num_key_value_heads=1, tie_word_embeddings=False, rms_norm_eps=None, rope_theta=None), 'F32', 1, None),
    'llama-head-dim': (dict(head_dim=16), 'F32', 1, None),
    'llama-rope-llama3': (dict(rope_theta=100.0, rope_scaling=LLAMA3_SCALING), 'F32', 1, None),
    'llama-rope-linear': (dict(rope_theta=100.0, rope_scaling=dict(type='linear', factor=4.0)), 'F32', 1, None),
    # the newer layout: theta and type inside rope_parameters
    'llama-rope-parameters': (dict(rope_theta=None, rope_parameters=dict(LLAMA3_SCALING, rope_theta=100.0)), 'F32', 1, None),
    'llama-attention-mlp-bias': (dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=False), 'F32', 1, None),
    'qwen2-bias': (
        dict(architectures=['Qwen2ForCausalLM'], model_type='qwen2', rope_theta=1000000.0, rms_norm_eps=1e-6,
             use_sliding_window=False, sliding_window=4096, max_window_layers=2, eos_token_id=[2, 3]),
        'F32', 1,
        dict(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05, eos_token_id=[2, 3, 4], bos_token_id=1),
    ),
    'llama-f16': (dict(), 'F16', 1, None),
    'llama-bf16-sharded': (dict(tie_word_embeddings=False), 'BF16', 3, dict(eos_token_id=[2, 5], max_new_tokens=7)),
}

TORCH_DTYPE = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16}


def full_config(overrides):
    cfg = dict(BASE)
    for k, v in overrides.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def head_dim(cfg):
    return cfg.get('head_dim') or cfg['hidden_size'] // cfg['num_attention_heads']


def biases(cfg):
    """(q/k/v bias, o bias, mlp bias): Qwen2 always biases q, k, v; Llama's attention_bias all four."""
    if cfg['model_type'] == 'qwen2':
        return True, False, False
    attn = cfg.get('attention_bias', False)
    return attn, attn, cfg.get('mlp_bias', False)


def weight_shapes(cfg):
    D, F, V = cfg['hidden_size'], cfg['intermediate_size'], cfg['vocab_size']
    hd = head_dim(cfg)
    Q, KV = cfg['num_attention_heads'] * hd, cfg['num_key_value_heads'] * hd
    qkv_bias, o_bias, mlp_bias = biases(cfg)
    shapes = {'model.embed_tokens.weight': [V, D]}
    for l in range(cfg['num_hidden_layers']):
        p = f'model.layers.{l}.'
        shapes[p + 'input_layernorm.weight'] = [D]
        shapes[p + 'self_attn.q_proj.weight'] = [Q, D]
        shapes[p + 'self_attn.k_proj.weight'] = [KV, D]
        shapes[p + 'self_attn.v_proj.weight'] = [KV, D]
        shapes[p + 'self_attn.o_proj.weight'] = [D, Q]
        if qkv_bias:
            shapes[p + 'self_attn.q_proj.bias'] = [Q]
            shapes[p + 'self_attn.k_proj.bias'] = [KV]
            shapes[p + 'self_attn.v_proj.bias'] = [KV]
        if o_bias:
            shapes[p + 'self_attn.o_proj.bias'] = [D]
        shapes[p + 'post_attention_layernorm.weight'] = [D]
        shapes[p + 'mlp.gate_proj.weight'] = [F, D]
        shapes[p + 'mlp.up_proj.weight'] = [F, D]
        shapes[p + 'mlp.down_proj.weight'] = [D, F]
        if mlp_bias:
            shapes[p + 'mlp.gate_proj.bias'] = [F]
            shapes[p + 'mlp.up_proj.bias'] = [F]
            shapes[p + 'mlp.down_proj.bias'] = [D]
    shapes['model.norm.weight'] = [D]
    if not cfg['tie_word_embeddings']:
        shapes['lm_head.weight'] = [V, D]
    return shapes


def random_weights(cfg, gen):
    """Norm weights near 1, biases and matrices large enough that every part moves the logits."""
    out = {}
    for name, shape in weight_shapes(cfg).items():
        if name.endswith('norm.weight'):
            t = 1 + 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name.endswith('.bias'):
            t = 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name == 'model.embed_tokens.weight':
            t = 0.05 * torch.randn(shape, generator=gen, dtype=torch.float64)  # small, so rms_norm_eps shows
        else:
            t = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[1]) * 1.5
        out[name] = t
    return out


# ---- the reference forward pass (float64) -------------------------------------------------

def rope_parameters(cfg):
    """(theta, scaling dict or None) from either layout."""
    if 'rope_parameters' in cfg:
        p = dict(cfg['rope_parameters'])
        theta = p.pop('rope_theta')
        kind = p.get('rope_type', 'default')
        return theta, (None if kind == 'default' else p)
    return cfg.get('rope_theta', 10000.0), cfg.get('rope_scaling')


def inv_freq(cfg):
    """Hugging Face's rope init functions: default, linear, llama3 (computed in float64 here)."""
    dim = head_dim(cfg)
    theta, scaling = rope_parameters(cfg)
    freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    kind = None if scaling is None else scaling.get('rope_type', scaling.get('type'))
    if kind is None or kind == 'default':
        return freq
    if kind == 'linear':
        return freq / scaling['factor']  # the same as positions / factor
    if kind == 'llama3':
        factor, low, high = scaling['factor'], scaling['low_freq_factor'], scaling['high_freq_factor']
        old_context = scaling['original_max_position_embeddings']
        low_freq_wavelen = old_context / low
        high_freq_wavelen = old_context / high
        wavelen = 2 * math.pi / freq
        llama = torch.where(wavelen > low_freq_wavelen, freq / factor, freq)
        smooth = (old_context / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * llama / factor + smooth * llama
        medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        return torch.where(medium, smoothed, llama)
    raise ValueError(f'rope type {kind}')


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def forward(cfg, W, tokens):
    """Logits (T, V) of a causal forward over `tokens` at positions 0..T-1."""
    T = len(tokens)
    H, KVH, hd = cfg['num_attention_heads'], cfg['num_key_value_heads'], head_dim(cfg)
    eps = cfg.get('rms_norm_eps', 1e-6)
    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq(cfg))
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, hd)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    causal = torch.full((T, T), float('-inf'), dtype=torch.float64).triu(1)
    x = W['model.embed_tokens.weight'][torch.tensor(tokens)]
    for l in range(cfg['num_hidden_layers']):
        p = f'model.layers.{l}.'
        g = lambda n: W.get(p + n)
        h = rms_norm(x, g('input_layernorm.weight'), eps)
        q = linear(h, g('self_attn.q_proj.weight'), g('self_attn.q_proj.bias')).view(T, H, hd)
        k = linear(h, g('self_attn.k_proj.weight'), g('self_attn.k_proj.bias')).view(T, KVH, hd)
        v = linear(h, g('self_attn.v_proj.weight'), g('self_attn.v_proj.bias')).view(T, KVH, hd)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: query head j reads kv head j // (H / KVH)
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        scores = torch.einsum('thd,shd->hts', q, k) / math.sqrt(hd) + causal
        att = torch.einsum('hts,shd->thd', scores.softmax(-1), v).reshape(T, H * hd)
        x = x + linear(att, g('self_attn.o_proj.weight'), g('self_attn.o_proj.bias'))
        h = rms_norm(x, g('post_attention_layernorm.weight'), eps)
        gate = linear(h, g('mlp.gate_proj.weight'), g('mlp.gate_proj.bias'))
        up = linear(h, g('mlp.up_proj.weight'), g('mlp.up_proj.bias'))
        x = x + linear(torch.nn.functional.silu(gate) * up, g('mlp.down_proj.weight'), g('mlp.down_proj.bias'))
    x = rms_norm(x, W['model.norm.weight'], eps)
    head = W['model.embed_tokens.weight'] if cfg['tie_word_embeddings'] else W['lm_head.weight']
    return x @ head.T


# ---- safetensors, by hand -----------------------------------------------------------------

SAFETENSORS_DTYPE = {'F32': 'F32', 'F16': 'F16', 'BF16': 'BF16'}


def tensor_bytes(t, dtype):
    t = t.to(TORCH_DTYPE[dtype]).contiguous()
    if dtype == 'BF16':
        t = t.view(torch.int16)  # numpy has no bfloat16: the same 16 bits as int16
    return t.numpy().tobytes()  # little-endian: main() checks the host is


def write_safetensors(path, tensors, dtype):
    header, blobs, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name in sorted(tensors):
        raw = tensor_bytes(tensors[name], dtype)
        header[name] = {'dtype': SAFETENSORS_DTYPE[dtype], 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)  # the data section starts 8-byte aligned
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def write_weights(folder, tensors, dtype, shards):
    if shards == 1:
        write_safetensors(os.path.join(folder, 'model.safetensors'), tensors, dtype)
        return
    names = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        file = f'model-{i + 1:05d}-of-{shards:05d}.safetensors'
        part = {n: tensors[n] for n in names[i::shards]}
        write_safetensors(os.path.join(folder, file), part, dtype)
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * (4 if dtype == 'F32' else 2) for t in tensors.values())
    with open(os.path.join(folder, 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)
        f.write('\n')


SPECIAL_TOKENS = ['<unk>', '<s>', '</s>']
FIRST_CHAR = ord('!')


def tokenizer_json(vocab_size):
    """A character-level tokenizer.json (BPE without merges): three special tokens, then one
    printable character per id, so the folder loads as a whole model."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for i in range(len(SPECIAL_TOKENS), vocab_size):
        vocab[chr(FIRST_CHAR + i - len(SPECIAL_TOKENS))] = i
    added = [dict(id=i, content=tok, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
             for i, tok in enumerate(SPECIAL_TOKENS)]
    return dict(version='1.0', truncation=None, padding=None, added_tokens=added, normalizer=None, pre_tokenizer=None,
                post_processor=None, decoder=None, model=dict(type='BPE', vocab=vocab, merges=[], unk_token='<unk>'))


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


def main():
    assert sys.byteorder == 'little', 'safetensors is little-endian; tensor_bytes writes host order'
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    for i, (name, (overrides, dtype, shards, generation)) in enumerate(VARIANTS.items()):
        cfg = full_config(overrides)
        cfg['torch_dtype'] = {'F32': 'float32', 'F16': 'float16', 'BF16': 'bfloat16'}[dtype]
        gen = torch.Generator().manual_seed(SEED + i)
        W = random_weights(cfg, gen)
        stored = {n: t.to(TORCH_DTYPE[dtype]).to(torch.float64) for n, t in W.items()}  # what the file holds
        prompt = torch.randint(0, cfg['vocab_size'], (PROMPT_LEN,), generator=gen).tolist()
        logits = forward(cfg, stored, prompt)
        folder = os.path.join(ROOT, name)
        os.makedirs(folder)
        write_json(os.path.join(folder, 'config.json'), cfg)
        write_weights(folder, W, dtype, shards)
        write_json(os.path.join(folder, 'tokenizer.json'), tokenizer_json(cfg['vocab_size']))
        if generation is not None:
            write_json(os.path.join(folder, 'generation_config.json'), generation)
        with open(os.path.join(folder, 'logits.json'), 'w') as f:
            rows = ',\n    '.join('[' + ','.join(f'{v:.7g}' for v in row) + ']' for row in logits.tolist())
            f.write(f'{{\n  "prompt": {json.dumps(prompt)},\n  "logits": [\n    {rows}\n  ]\n}}\n')
        print(f'{name}: {dtype}, {shards} file(s), logits {tuple(logits.shape)}, |max| {logits.abs().max().item():.3f}')


if __name__ == '__main__':
    main()
