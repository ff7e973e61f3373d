"""The VideoGPT prior: sparse layout against its definition, causality, KV-cache equivalence, per-sample seeds,
token selection, LayerNorm formulas, conditioning, errors, and every GPT card (build, parameter count).

Models here are tiny (hidden 32, 1-2 layers, grids of 256 tokens) so each test runs in a few seconds on CPU. The
zero-initialised head would make every logit 0 (and causality or cache tests pass trivially), so tests draw a
random head first (``_randomise_head``).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from vgbench.errors import CardError, InputError
from vgbench.models.attention import (
    LayerNorm,
    layer_norm,
    sparse_attention_mask,
    sparse_block_grid,
    sparse_block_layout,
    sparse_decode_keys,
)
from vgbench.models.conditioning import ConditionalLayerNorm, FrameConv3d, FrameEncoder
from vgbench.models.gpt import GPT, GPTConfig, VideoGPT, codebook_table, filter_logits, sample_tokens, to_uint8

# A tiny prior: grid 4x8x8 = 256 tokens, so the sparse layout has a (4, 2) block grid of 8 blocks and block 7
# reaches block 1 only through the strided (same column, earlier time) links, not the 4-block local window.
TINY = dict(shape=(4, 8, 8), vocab_size=16, embedding_dim=8, frame_channels=3, frames=8, resolution=16,
            hidden=32, heads=4, layers=2, ff_hidden=64, dropout=0.0, resnet_depth=18, resnet_base=8,
            resnet_dim=24)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def _config(**kw) -> GPTConfig:
    return GPTConfig(**{**TINY, **kw})


def _randomise_head(model: GPT, seed: int = 0) -> GPT:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.1)  # logits of a few units
    return model


def _model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return _randomise_head(GPT(_config(**kw)), seed).eval()


def _cond(config: GPTConfig, batch: int, seed: int = 0) -> dict | None:
    g = torch.Generator().manual_seed(seed)
    cond = {}
    if config.cond_frames:
        shape = (batch, config.frame_channels, config.cond_frames, config.resolution, config.resolution)
        cond["frames"] = torch.rand(shape, generator=g) - 0.5
    if config.n_classes:
        cond["label"] = torch.randint(0, config.n_classes, (batch,), generator=g)
    if config.action_dim:
        cond["action"] = torch.randn(batch, config.action_dim, generator=g)
    return cond or None


def _codebook(config: GPTConfig, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(config.codebooks, config.vocab_size, config.embedding_dim, generator=g)


def _embed(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Codebook vectors of a code grid (B, *shape) -> (B, *shape, D); codebook c serves last index c."""
    c = table.shape[0]
    flat = codes.flatten(1)
    book = torch.arange(flat.shape[1]) % c
    return table[book, flat].view(*codes.shape, -1)


CONDITIONS = {
    "none": {},
    "frames": {"cond_frames": 1},
    "class": {"n_classes": 5},
    "frames+class+action": {"cond_frames": 2, "n_classes": 3, "action_dim": 4},
}


# ----------------------------------------------------------------------------------------------------------
# Sparse layout


def _layout_by_definition(grid: tuple[int, ...], local: int = 4) -> np.ndarray:
    """videogpt.md §5 written out: block row r attends to r-local..r, and for every block-grid axis but the last,
    to each block equal to r except for a smaller or equal index on that axis."""
    n = math.prod(grid)
    out = np.zeros((n, n), dtype=bool)
    for r in range(n):
        for col in range(max(0, r - local), r + 1):
            out[r, col] = True
        ri = np.unravel_index(r, grid)
        for d in range(len(grid) - 1):
            for i in range(ri[d] + 1):
                idx = list(ri)
                idx[d] = i
                out[r, np.ravel_multi_index(idx, grid)] = True
    return out


@pytest.mark.parametrize(
    ("shape", "grid"),
    [((4, 32, 32), (4, 32)), ((8, 32, 32), (8, 32)), ((4, 16, 16), (4, 8))],  # videogpt.md §5 table
)
def test_sparse_mask_equals_layout_definition(shape, grid):
    assert sparse_block_grid(shape, 32) == grid
    layout = _layout_by_definition(grid)
    assert np.array_equal(sparse_block_layout(shape).numpy(), layout)
    mask = sparse_attention_mask(shape).numpy()
    s = math.prod(shape)
    # Dense equivalent: allow[q, k] = layout[q // 32, k // 32] and k <= q (with the triangle inside diagonal blocks)
    expect = np.kron(layout, np.ones((32, 32), dtype=bool)) & np.tri(s, dtype=bool)
    assert np.array_equal(mask, expect)
    # Within a diagonal block: exactly the lower triangle; an allowed off-diagonal block is fully open.
    b = 5 * 32
    assert np.array_equal(mask[b : b + 32, b : b + 32], np.tri(32, dtype=bool))
    assert mask[b : b + 32, b - 32 : b].all() and not mask[b : b + 32, b + 32 : b + 64].any()
    # Strided link: the block of the same column one time step back (32 blocks per time step in 4x32 and 8x32).
    per_t = grid[-1]
    if grid[0] > 1 and per_t > 4:
        q0 = (per_t + 10) * 32  # block (t=1, col=10)
        assert mask[q0 : q0 + 32, 10 * 32 : 11 * 32].all()  # (t=0, col 10): strided
        assert not mask[q0 : q0 + 32, 9 * 32 : 10 * 32].any()  # (t=0, col 9): neither local nor strided


GOLDEN = Path(__file__).with_name("golden") / "gpt_sparse_layouts.npz"
GOLDEN_GRIDS = [(4, 32, 32), (8, 32, 32), (4, 16, 16), (1, 64, 64), (16, 8, 8), (16, 16, 16, 2), (8, 16, 16, 4)]


@pytest.mark.parity
@pytest.mark.parametrize("shape", GOLDEN_GRIDS, ids=lambda s: "x".join(map(str, s)))
def test_sparse_layout_matches_the_reference_code(shape):
    """Parity with VG's StridedSparsityConfig (golden made by tests/golden/make_gpt_sparse_layouts.py): the block
    grid, the block layout, and the dense mask rows VG builds per decoding step (every 37th position)."""
    key = "x".join(map(str, shape))
    golden = np.load(GOLDEN)
    grid = tuple(int(g) for g in golden[f"{key}/grid"])
    assert sparse_block_grid(shape) == grid
    n = math.prod(grid)
    layout = np.unpackbits(golden[f"{key}/layout"])[: n * n].reshape(n, n).astype(bool)
    assert np.array_equal(sparse_block_layout(shape).numpy(), layout)
    mask_rows = sparse_attention_mask(shape)[::37].numpy()
    rows = np.unpackbits(golden[f"{key}/rows"])[: mask_rows.size].reshape(mask_rows.shape).astype(bool)
    assert np.array_equal(mask_rows, rows)


@pytest.mark.parametrize("shape", [(4, 8, 8), (4, 16, 16), (1, 64, 64), (8, 16, 16, 4)])
def test_decode_keys_are_the_mask_rows(shape):
    """Sampling gathers the keys of row i of the mask (its block row's list, cut after position i)."""
    mask = sparse_attention_mask(shape)
    rows = sparse_decode_keys(shape)
    for i in range(mask.shape[0]):
        row = rows[i // 32]
        assert torch.equal(row[: len(row) - 32 + i % 32 + 1], mask[i].nonzero()[:, 0]), i


def test_block_grid_folds_and_refuses():
    assert sparse_block_grid((1, 64, 64)) == (1, 64, 2)
    assert sparse_block_grid((16, 16, 16, 2)) == (16, 16)  # Table 7 grid with its codebook axis
    assert sparse_block_grid((2, 4, 4)) == (1,)  # 32 tokens: one block
    with pytest.raises(ValueError, match=r"fold to 35, not a multiple of 32"):
        sparse_block_grid((3, 5, 7))


# ----------------------------------------------------------------------------------------------------------
# Causality and mask use


@pytest.mark.parametrize("attention", ["full", "sparse"])
@pytest.mark.parametrize("cond", ["none", "frames", "class"])
def test_future_tokens_never_change_earlier_logits(attention, cond):
    model = _model(attention=attention, **CONDITIONS[cond])
    c = model.config
    table = _codebook(c)
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, c.vocab_size, (2, *c.shape), generator=g)
    conds = _cond(c, 2)
    base = model(_embed(table, codes), conds).flatten(1, -2)  # (B, S, K)
    for j in (0, 37, 130, 255):
        changed = codes.clone().flatten(1)
        changed[:, j] = (changed[:, j] + 1) % c.vocab_size
        out = model(_embed(table, changed.view_as(codes)), conds).flatten(1, -2)
        assert torch.equal(out[:, : j + 1], base[:, : j + 1])  # positions <= j see codes < position only
        if j < 255:
            assert (out[:, j + 1] - base[:, j + 1]).abs().max() > 1e-4  # the next position does see it


def test_one_layer_dependencies_follow_the_mask():
    """With one layer, logits at q depend on code k exactly when the mask lets q attend to k + 1 (the input at
    position k + 1 is code k after the right shift)."""
    model = _model(attention="sparse", layers=1)
    c = model.config
    table = _codebook(c)
    codes = torch.randint(0, c.vocab_size, (1, *c.shape), generator=torch.Generator().manual_seed(2))
    base = model(_embed(table, codes)).flatten(1, -2)[0]
    mask = sparse_attention_mask(c.shape)
    for k in (3, 40, 62):  # position k + 1 lies in block 0 or 1, which blocks 5 or 6 never see
        changed = codes.clone().flatten(1)
        changed[0, k] = (changed[0, k] + 3) % c.vocab_size
        out = model(_embed(table, changed.view_as(codes))).flatten(1, -2)[0]
        depends = (out - base).abs().amax(dim=-1) > 1e-6  # (S,)
        assert torch.equal(depends, mask[:, k + 1]), k
        assert depends.sum() < (c.seq_len - k - 1)  # some later positions are masked off: the layout is sparse


# ----------------------------------------------------------------------------------------------------------
# KV-cache sampling


@pytest.mark.parametrize("attention", ["full", "sparse"])
@pytest.mark.parametrize("cond", ["none", "frames+class+action"])
def test_cached_sampling_reproduces_teacher_forced_logits(attention, cond):
    model = _model(attention=attention, **CONDITIONS[cond])
    c = model.config
    table = _codebook(c)
    conds = _cond(c, 3)
    codes, step_logits = model.sample_codes(table, n=3, cond=conds, seeds=[5, 6, 7], return_logits=True)
    forced = model(_embed(table, codes), conds).flatten(1, -2)
    torch.testing.assert_close(step_logits, forced, atol=1e-5, rtol=0)  # tolerance from the issue
    assert step_logits.abs().max() > 0.1  # the random head makes the comparison meaningful


@pytest.mark.parametrize("attention,depth", [("full", 1), ("sparse", 1), ("full", 2)])
def test_frame_shortcut_is_causal_and_cached(attention, depth):
    """The previous-frame shortcut (issue 19): a code reaches the next latent frame's inputs at its k x k
    neighbourhood, never an earlier position, and KV-cache sampling (with and without kept context) gives the
    teacher-forced logits."""
    model = _model(attention=attention, frame_shortcut=3, frame_shortcut_depth=depth, layers=1)
    c = model.config
    table = _codebook(c)
    codes = torch.randint(0, c.vocab_size, (2, *c.shape), generator=torch.Generator().manual_seed(3))
    base = model(_embed(table, codes)).flatten(1, -2)
    changed = codes.clone()
    changed[:, 1, 4, 4] = (changed[:, 1, 4, 4] + 1) % c.vocab_size  # flat position 64 + 36 = 100
    out = model(_embed(table, changed)).flatten(1, -2)
    assert torch.equal(out[:, :101], base[:, :101])
    # with the attention's output projection zeroed, only the shortcut carries codes forward: exactly the 3 x 3
    # neighbourhood of (4, 4) in the next `depth` latent frames (and the next position, through the right shift)
    with torch.no_grad():
        model.blocks[0].attn.out.weight.zero_()
    base, out = (model(_embed(table, x)).flatten(1, -2) for x in (codes, changed))
    moved = ((out - base).abs().amax(-1) > 1e-6)[0].nonzero()[:, 0].tolist()
    assert moved == [101] + [64 * t + 8 * h + w for t in range(2, 2 + depth) for h in (3, 4, 5) for w in (3, 4, 5)]
    model = _model(attention=attention, frame_shortcut=3, frame_shortcut_depth=depth)
    for context in (None, codes[:, :2]):
        got, logits = model.sample_codes(table, n=2, seeds=[1, 2], return_logits=True, context=context)
        torch.testing.assert_close(logits, model(_embed(table, got)).flatten(1, -2), atol=1e-5, rtol=0)
        if context is not None:
            assert torch.equal(got[:, :2], context)


@pytest.mark.parametrize("attention", ["full", "sparse"])
def test_row_shortcut_is_causal_and_cached(attention):
    """The row shortcut (issue 19): a code reaches the inputs of the three positions below it in its own latent
    frame (and the next position, through the right shift), never an earlier one; KV-cache sampling, with and
    without kept context, gives the teacher-forced logits, also beside the frame shortcut."""
    model = _model(attention=attention, row_shortcut=True, layers=1)
    c = model.config
    table = _codebook(c)
    codes = torch.randint(0, c.vocab_size, (2, *c.shape), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.blocks[0].attn.out.weight.zero_()  # only the input paths carry a code forward
    moved = {}
    for h, w in ((4, 4), (4, 0), (4, 7), (7, 4)):
        changed = codes.clone()
        changed[:, 1, h, w] = (changed[:, 1, h, w] + 1) % c.vocab_size
        base, out = (model(_embed(table, x)).flatten(1, -2) for x in (codes, changed))
        moved[h, w] = ((out - base).abs().amax(-1) > 1e-6)[0].nonzero()[:, 0].tolist()
    assert moved[4, 4] == [101, 64 + 8 * 5 + 3, 64 + 8 * 5 + 4, 64 + 8 * 5 + 5]  # (1, 4, 4) = flat 100
    assert moved[4, 0] == [97, 64 + 8 * 5 + 0, 64 + 8 * 5 + 1]  # the left edge: no wrap to the row before
    assert moved[4, 7] == [104, 64 + 8 * 5 + 6, 64 + 8 * 5 + 7]  # the right edge; 104, the next position, is row 5
    assert moved[7, 4] == [64 + 61]  # the last row reaches nothing below it in its frame
    for extra in ({}, {"frame_shortcut": 3, "frame_shortcut_depth": 2}):
        model = _model(attention=attention, row_shortcut=True, **extra)
        for context in (None, codes[:, :2]):
            got, logits = model.sample_codes(table, n=2, seeds=[1, 2], return_logits=True, context=context)
            torch.testing.assert_close(logits, model(_embed(table, got)).flatten(1, -2), atol=1e-5, rtol=0)
            assert logits.abs().max() > 0.1


def test_frame_shortcut_off_is_the_reference_prior():
    """frame_shortcut 0 builds no extra weights (checkpoints of both code bases load unchanged)."""
    plain, shortcut = _model(), _model(frame_shortcut=3)
    extra = set(shortcut.state_dict()) - set(plain.state_dict())
    assert extra == {"shortcut.weight"} and shortcut.shortcut.weight.shape == (32, 8, 1, 3, 3)


def test_cached_sampling_with_codebooks():
    # Two codebooks: the grid's last axis is the codebook axis; codebook c embeds positions whose last index is c.
    model = _model(shape=(2, 4, 8, 2), codebooks=2, attention="sparse")
    table = _codebook(model.config)
    codes, step_logits = model.sample_codes(table, n=2, seeds=[1, 2], return_logits=True)
    torch.testing.assert_close(step_logits, model(_embed(table, codes)).flatten(1, -2), atol=1e-5, rtol=0)


def test_samples_depend_only_on_their_seed():
    model = _model(cond_frames=1, shape=(2, 4, 8), attention="full")  # 64 tokens: eight sampling runs
    c, table = model.config, _codebook(model.config)
    conds = _cond(c, 4)
    together = model.sample_codes(table, cond=conds, seeds=[11, 12, 13, 14])
    alone = torch.cat([model.sample_codes(table, cond={"frames": conds["frames"][i : i + 1]}, seeds=[11 + i])
                       for i in range(4)])  # fmt: skip
    pairs = torch.cat([model.sample_codes(table, cond={"frames": conds["frames"][i : i + 2]}, seeds=[11 + i, 12 + i])
                       for i in (0, 2)])  # fmt: skip
    assert torch.equal(together, alone) and torch.equal(together, pairs)
    other = model.sample_codes(table, cond=conds, seeds=[21, 12, 13, 14])
    assert torch.equal(other[1:], together[1:]) and not torch.equal(other[0], together[0])


def test_top_k_one_is_greedy():
    model = _model(attention="sparse", n_classes=3)
    c, table = model.config, _codebook(model.config)
    conds = _cond(c, 2)
    codes = model.sample_codes(table, cond=conds, top_k=1, seeds=[0, 1])
    forced = model(_embed(table, codes), conds)
    assert torch.equal(forced.argmax(dim=-1), codes)  # every token is the argmax given its prefix


def test_token_selection_known_answers():
    probs = torch.tensor([[0.25, 0.25, 0.5]])
    logits = probs.log()
    # inverse CDF: cumulative 0.25, 0.5, 1.0
    for u, tok in ((0.0, 0), (0.2499, 0), (0.25, 1), (0.3, 1), (0.5, 2), (0.999, 2)):
        assert sample_tokens(logits, torch.tensor([u])).item() == tok
    # top-k = 2 keeps 0.5 and one 0.25 (ties broken by topk): renormalised (1/3, 2/3) over the kept ones
    kept = filter_logits(torch.tensor([[0.1, 0.2, 0.7]]).log(), top_k=2).softmax(-1)
    torch.testing.assert_close(kept, torch.tensor([[0.0, 2 / 9, 7 / 9]]))
    # top-p = 0.6 over (0.5, 0.3, 0.2): 0.5 < 0.6, so 0.3 joins; 0.8 >= 0.6, so 0.2 is cut
    kept = filter_logits(torch.tensor([[0.3, 0.5, 0.2]]).log(), top_p=0.6).softmax(-1)
    torch.testing.assert_close(kept, torch.tensor([[0.375, 0.625, 0.0]]))
    # temperature 2 on log-probs = square roots, renormalised
    hot = filter_logits(torch.tensor([[0.2, 0.8]]).log(), temperature=2.0).softmax(-1)
    torch.testing.assert_close(hot, torch.tensor([[1 / 3, 2 / 3]]))
    # top_k = 1 is argmax whatever the uniform
    x = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    u = torch.rand(64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sample_tokens(x, u, top_k=1), x.argmax(-1))
    with pytest.raises(InputError, match="temperature must be > 0"):
        filter_logits(x, temperature=0.0)
    with pytest.raises(InputError, match=r"top_p must be in \(0, 1\]"):
        filter_logits(x, top_p=1.5)


# ----------------------------------------------------------------------------------------------------------
# Norms and conditioning blocks


def test_layernorm_formulas():
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.01 + 0.3
    w, b = torch.rand(16, dtype=torch.float64) + 0.5, torch.randn(16, dtype=torch.float64)
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased
    # videogpt.md §4: y = (x - mu) * (1e-5 + rsqrt(var)) * g + b
    quirk = (x - mu) * (1e-5 + 1 / var.sqrt()) * w + b
    standard = (x - mu) / (var + 1e-5).sqrt() * w + b
    got_q = layer_norm(x.float(), w.float(), b.float(), quirk=True).double()
    got_s = layer_norm(x.float(), w.float(), b.float(), quirk=False).double()
    torch.testing.assert_close(got_q, quirk, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(got_s, standard, atol=1e-4, rtol=1e-5)
    assert (got_q - got_s).abs().max() > 1e-2  # var ~ 1e-4: the two placements differ visibly
    ln = LayerNorm(16, quirk=False)
    torch.testing.assert_close(ln(x.float()), nn.functional.layer_norm(x.float(), (16,)))
    # bf16 input: computed in float32, returned in bf16
    assert layer_norm(x.bfloat16(), w.float(), b.float(), quirk=True).dtype == torch.bfloat16


def test_conditional_layernorm_gain_starts_at_one_plus_inverse_sqrt():
    norm = ConditionalLayerNorm(8, 101, quirk=True)
    c = nn.functional.one_hot(torch.tensor([3, 50]), 101).float()
    # gain 1 + 1/sqrt(101) (about 1.0995) at initialisation (videogpt.md §4); the bias map is a default Linear
    torch.testing.assert_close(1 + norm.gain(c), torch.full((2, 8), 1 + 1 / math.sqrt(101)))
    x = torch.randn(2, 4, 8)
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    expect = (x - mu) * (1e-5 + var.rsqrt()) * (1 + norm.gain(c))[:, None] + norm.shift(c)[:, None]
    torch.testing.assert_close(norm(x, c), expect)


@pytest.mark.parametrize(("k", "stride"), [(3, (1, 2, 2)), (3, (1, 1, 1)), (1, (1, 2, 2))])
def test_one_frame_conv_path_equals_3d_conv(k, stride):
    conv = FrameConv3d(3, 5, k, stride)
    x = torch.randn(2, 3, 1, 12, 12).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    y = conv(x)
    ref_w = conv.weight.detach().clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    ref = nn.functional.conv3d(x_ref, ref_w, None, stride, k // 2)
    torch.testing.assert_close(y, ref)
    (y * ref.detach()).sum().backward()
    (ref * ref.detach()).sum().backward()
    torch.testing.assert_close(conv.weight.grad, ref_w.grad)
    torch.testing.assert_close(x.grad, x_ref.grad)
    x2 = torch.randn(2, 3, 2, 12, 12)  # two frames: the plain 3D path
    torch.testing.assert_close(conv(x2), nn.functional.conv3d(x2, conv.weight, None, stride, k // 2))


def test_frame_encoder_shapes_and_block_counts():
    enc = FrameEncoder(in_channels=1, depth=34, base=8, out_dim=12)
    assert enc(torch.rand(2, 1, 3, 16, 16) - 0.5).shape == (2, 3, 4, 4, 12)  # (B, n, H/4, W/4, out_dim)
    assert [len(g) for g in enc.groups] == [3, 4, 6, 3]  # ResNet-34
    assert [len(g) for g in FrameEncoder(3, 18, 8, 12).groups] == [2, 2, 2, 2]  # ResNet-18
    assert all(g[0].project for g in enc.groups)  # a projection shortcut opens every group


# ----------------------------------------------------------------------------------------------------------
# Training-side behaviour


def test_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = _randomise_head(GPT(_config(cond_frames=1, attention="sparse"))).train()
    b = _randomise_head(GPT(_config(cond_frames=1, attention="sparse", checkpointing=True))).train()
    b.load_state_dict(a.state_dict())
    table, c = _codebook(a.config), a.config
    codes = torch.randint(0, c.vocab_size, (2, *c.shape))
    conds = _cond(c, 2)
    for m in (a, b):
        logits = m(_embed(table, codes), conds)
        nn.functional.cross_entropy(logits.flatten(0, -2), codes.flatten()).backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_dropout_is_active_in_training_only():
    model = _model(dropout=0.5)
    table, c = _codebook(model.config), model.config
    x = _embed(table, torch.randint(0, c.vocab_size, (1, *c.shape)))
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_saved_mask_is_accepted_only_when_equal():
    model = _model(attention="sparse")
    state = model.state_dict()
    assert "attn_mask" not in state  # non-persistent
    model.load_state_dict({**state, "attn_mask": model.attn_mask.float()})
    with pytest.raises(InputError, match="saved attention mask differs"):
        model.load_state_dict({**state, "attn_mask": torch.ones_like(model.attn_mask)})


# ----------------------------------------------------------------------------------------------------------
# Configuration errors and input errors


@pytest.mark.parametrize(
    ("kw", "field", "message"),
    [
        ({"hidden": 30, "heads": 3}, "config.hidden", r"concatenates 4 per-axis tables.*multiple of 4, got 30"),
        ({"hidden": 32, "pos_embedding": "axes", "heads": 4}, "config.hidden", r"multiple of 3 \(or pos_embedding"),
        ({"hidden": 36, "heads": 8}, "config.heads", r"hidden 36 does not split into 8 heads"),
        ({"shape": (3, 5, 7)}, "config.attention", r"sparse layout impossible.*fold to 35"),
        ({"cond_frames": 1, "resnet_dim": 512}, "config.resnet_dim", r"multiple of 3 \(VGP: 576\), got 512"),
        ({"cond_frames": 9}, "config.cond_frames", r"more conditioning frames than the clip's 8"),
        ({"shape": (4, 8, 8), "codebooks": 2}, "config.shape", r"last axis is the codebook axis"),
        ({"dropout": 1.0}, "config.dropout", r"is a probability"),
        ({"frame_shortcut": 2}, "config.frame_shortcut", r"odd conv kernel .* got 2"),
        ({"shape": (2, 4, 8, 2), "codebooks": 2, "frame_shortcut": 3}, "config.frame_shortcut", r"one codebook"),
        ({"pos_std": 0.0}, "config.pos_std", r"standard deviation"),
        ({"frame_shortcut": 3, "frame_shortcut_depth": 0}, "config.frame_shortcut_depth", r"previous latent frames"),
        ({"shape": (2, 4, 8, 2), "codebooks": 2, "row_shortcut": True}, "config.row_shortcut", r"one codebook"),
    ],
)
def test_impossible_configs_name_the_field(kw, field, message):
    with pytest.raises(CardError, match=rf"card gpt.x: field '{field}': .*{message}"):
        _config(attention="sparse", **kw).validate("card gpt.x")


def test_bad_inputs_are_clear_errors():
    model = _model(cond_frames=1, n_classes=3)
    c, table = model.config, _codebook(model.config)
    x = _embed(table, torch.zeros(2, *c.shape, dtype=torch.long))
    good = _cond(c, 2)
    with pytest.raises(InputError, match=r"x_emb must be float \(B, \*shape, D\) = \(B, 4, 8, 8, 8\)"):
        model(x[:, :2], good)
    with pytest.raises(InputError, match="conditioned on 'label' but cond has none"):
        model(x, {"frames": good["frames"]})
    with pytest.raises(InputError, match=r"cond\['label'\] out of range: allowed 0..2, got 0..3"):
        model(x, {**good, "label": torch.tensor([0, 3])})
    with pytest.raises(InputError, match=r"must be float in \[-0.5, 0.5\]"):
        model(x, {**good, "frames": good["frames"] + 0.5 + 0.1})
    with pytest.raises(InputError, match=r"unknown conditioning key 'video'"):
        model(x, {**good, "video": good["frames"]})
    with pytest.raises(InputError, match="not conditioned on 'action'"):
        model(x, {**good, "action": torch.zeros(2, 4)})
    with pytest.raises(InputError, match="one seed per sample: 2 samples but 1 seeds"):
        model.sample_codes(table, cond=good, seeds=[1])
    with pytest.raises(InputError, match="needs eval mode"):
        model.train().sample_codes(table, cond=good, seeds=[1, 2])


# ----------------------------------------------------------------------------------------------------------
# The wrapper, on a stand-in VQ-VAE (a strided conv encoder and a nearest-code quantiser)


class StandInVQVAE(nn.Module):
    """Implements the VQ-VAE contract used by VideoGPT: config, latent_shape, encode, decode, embed."""

    def __init__(self, channels=3, frames=8, resolution=16, n_codes=16, dim=8):
        super().__init__()
        self.config = SimpleNamespace(n_codes=n_codes, in_channels=channels, frames=frames, resolution=resolution,
                                      n_codebooks=1, embedding_dim=dim)  # fmt: skip
        self.latent_shape = (frames // 2, resolution // 2, resolution // 2)
        self.enc = nn.Conv3d(channels, dim, 2, stride=2)
        self.dec = nn.ConvTranspose3d(dim, channels, 2, stride=2)
        self.register_buffer("embeddings", torch.randn(n_codes, dim))

    def encode(self, x):
        z = self.enc(x).movedim(1, -1)  # (B, t, h, w, D)
        return torch.cdist(z.flatten(1, -2), self.embeddings[None]).argmin(-1).view(z.shape[:-1])

    def embed(self, codes):
        if codes.min() < 0 or codes.max() >= self.config.n_codes:
            raise InputError("codes out of range")
        return self.embeddings[codes]

    def decode(self, codes):
        return self.dec(self.embed(codes).movedim(-1, 1))


def _video_gpt(**kw) -> VideoGPT:
    torch.manual_seed(0)
    vq = StandInVQVAE()
    fields = dict(shape=vq.latent_shape, vocab_size=16, embedding_dim=8, codebooks=1, frame_channels=3, frames=8,
                  resolution=16)  # fmt: skip
    return VideoGPT(vq, _randomise_head(GPT(_config(**{**fields, **kw}))))


def test_wrapper_loss_nll_and_sampling():
    vg = _video_gpt(cond_frames=1, attention="sparse")
    video = torch.rand(2, 3, 8, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.5
    loss, logits, codes = vg.loss(video)
    assert codes.shape == (2, 4, 8, 8) and logits.shape == (2, 4, 8, 8, 16)
    nll = vg.token_nll(codes, vg.condition(video))
    assert nll.shape == (2, 256)
    torch.testing.assert_close(nll.mean(), loss)
    loss.backward()
    assert vg.prior.head.weight.grad is not None and vg.vqvae.enc.weight.grad is None  # VQ-VAE frozen
    vg.train()
    assert vg.prior.training and not vg.vqvae.training
    # Table of codebook vectors read back through embed()
    torch.testing.assert_close(codebook_table(vg.vqvae)[0], vg.vqvae.embeddings)
    vg.eval()
    cond = vg.condition(video)
    a = vg.sample(cond, seeds=[3, 4], batch_size=2)
    b = vg.sample(cond, seeds=[3, 4], batch_size=1)
    assert a.dtype == torch.uint8 and a.shape == (2, 8, 16, 16, 3)  # (N, T, H, W, C)
    assert torch.equal(a, b)
    with pytest.raises(InputError, match=r"codes out of range: allowed 0..15, got 16..16"):
        vg.token_nll(torch.full((1, 4, 8, 8), 16), cond)
    with pytest.raises(InputError, match=r"codes must be integer \(B, 4, 8, 8\)"):
        vg.token_nll(torch.zeros(1, 4, 8, 9, dtype=torch.long), cond)
    with pytest.raises(InputError, match=r"video must be float \(B, C, T, H, W\) = \(B, 3, 8, 16, 16\)"):
        vg.loss(video[:, :, :4])


def test_wrapper_refuses_a_mismatched_vqvae():
    vq = StandInVQVAE(n_codes=32)
    with pytest.raises(InputError, match=r"prior and VQ-VAE disagree.*'vocab_size': \(32, 16\)"):
        VideoGPT(vq, GPT(_config(shape=vq.latent_shape, frames=8, resolution=16)))


def test_to_uint8_truncates_and_clamps():
    x = torch.tensor([-0.7, -0.5, 0.0, 0.001, 0.4999, 0.5, 0.9]).view(1, 1, 1, 1, 7)  # (B, C, T, H, W)
    # (x.clamp + 0.5) * 255 = 0, 0, 127.5, 127.755, 254.97, 255, 255 -> floor, VideoGPT's astype(uint8) (metrics.md §7)
    assert to_uint8(x).flatten().tolist() == [0, 0, 127, 127, 254, 255, 255]


# ----------------------------------------------------------------------------------------------------------
# Cards


def _gpt_cards() -> list[str]:
    from vgbench import cards

    return [n for n in cards.names("models") if cards.model(n).arch == "videogpt_gpt"]  # not the VG-import cards


def _small_grid(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A grid of <= 256 tokens with the card's number of axes (and codebook axis), valid for the 32-token layout."""
    if len(shape) == 4:
        return (2, 4, 4, shape[-1])
    return shape if math.prod(shape) <= 2048 else (2, 8, 8)


@pytest.mark.parametrize("name", _gpt_cards())
def test_every_gpt_card_builds_reduced_and_trains(name):
    from vgbench import cards
    from vgbench.models.gpt import prior_config

    card = cards.model(name)
    full = prior_config(card)  # the full-size configuration validates (its VQ-VAE built on the meta device)
    assert card.arch == "videogpt_gpt" and card.vqvae.startswith("vqvae.") and card.training is not None
    small = prior_config(card, hidden=16, layers=1, ff_hidden=32, resnet_base=4, resnet_dim=12, dropout=0.1,
                         shape=_small_grid(full.shape))  # fmt: skip
    torch.manual_seed(0)
    model = _randomise_head(GPT(small)).train()
    table = _codebook(small)
    codes = torch.randint(0, small.vocab_size, (2, *small.shape))
    logits = model(_embed(table, codes), _cond(small, 2))
    assert logits.shape == (2, *small.shape, small.vocab_size)
    nn.functional.cross_entropy(logits.flatten(0, -2), codes.flatten()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def _resnet_params(c_in: int, depth: int, base: int, out: int) -> int:
    """3D ResNet with channel LayerNorm, counted layer by layer (no conv biases; LN = gain + bias)."""
    n = c_in * base * 27 + 2 * base  # stem: 3x3x3 conv, LN
    cin = base
    for blocks, w in zip({18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth], (base, 2 * base, 4 * base, out), strict=True):
        n += cin * w * 27 + 2 * w + w * w * 27 + 2 * w  # first block: conv1 (cin -> w), LN, conv2 (w -> w), LN
        n += cin * w + 2 * w  # its projection shortcut: 1x1x1 conv, LN
        n += (blocks - 1) * 2 * (w * w * 27 + 2 * w)  # further blocks: two 3x3x3 convs with their LNs
        cin = w
    return n


# gpt.bair counted by hand (hidden h = 512, D = 256, K = 1024, grid (8, 32, 32) + codebook axis 1, 16 layers):
BAIR_LAYER = (
    3 * 2 * 512  # three LayerNorms (self-attention, cross-attention, MLP)
    + 3 * 512 * 512 + 512 * 512  # self-attention q, k, v and output (no biases)
    + 512 * 512 + 2 * 576 * 512 + 512 * 512  # cross-attention q (512 -> 512), k, v (576 -> 512), output
    + (512 * 2048 + 2048) + (2048 * 512 + 512)  # MLP with biases
)  # = 4,265,472  # fmt: skip
BAIR_POS = (8 + 32 + 32 + 1) * 128  # four concatenated tables of 512 / 4 channels
BAIR = (
    256 * 512 + 512 + BAIR_POS  # fc_in, SOS, position tables
    + 16 * BAIR_LAYER
    + 2 * 512 + 512 * 1024  # final LayerNorm, head
    + _resnet_params(3, 34, 64, 576)  # = 73,317,056 (ResNet-34, 576 units)
    + (1 + 16 + 16) * 192  # frame features' position tables over (1, 16, 16), 576 / 3 channels each
)  # fmt: skip
MMNIST = (
    64 * 192 + 192 + (4 + 16 + 16 + 1) * 48  # fc_in (D = 64), SOS, four tables of 192 / 4
    + 8 * (3 * 2 * 192 + 4 * 192 * 192 + 192 * 192 + 2 * 576 * 192 + 192 * 192 + 192 * 384 + 384 + 384 * 192 + 192)
    + 2 * 192 + 192 * 512  # final LayerNorm, head (K = 512)
    + _resnet_params(1, 18, 64, 576)  # one-channel frames, ResNet-18 = 39,243,584
    + (1 + 16 + 16) * 192
)  # fmt: skip
UCF = (
    256 * 1024 + 1024 + (4 + 32 + 32 + 1) * 256  # fc_in, SOS, four tables of 1024 / 4
    + 20 * (2 * 2 * 1024 + 4 * 1024 * 1024 + (1024 * 4096 + 4096) + (4096 * 1024 + 1024))  # no cross-attention
    + 2 * 1024 + 1024 * 1024
)  # fmt: skip
PARAMS = {
    "gpt.bair": BAIR,
    "gpt.bair_layers2": BAIR - 14 * BAIR_LAYER,
    "gpt.bair_layers4": BAIR - 12 * BAIR_LAYER,
    "gpt.bair_layers8": BAIR - 8 * BAIR_LAYER,
    "gpt.bair_codes256": BAIR + 512 * (256 - 1024),  # head rows
    "gpt.bair_codes4096": BAIR + 512 * (4096 - 1024),
    **{
        f"gpt.bair_latent{'x'.join(map(str, g))}": BAIR - BAIR_POS + (sum(g) + 1) * 128
        for g in (
            (4, 16, 16),
            (16, 8, 8),
            (8, 16, 16),
            (1, 64, 64),
            (4, 32, 32),
            (16, 16, 16),
            (2, 64, 64),
            (4, 64, 64),
            (16, 32, 32),
        )
    },  # fmt: skip
    "gpt.bair_16x16x16x2": BAIR - BAIR_POS + (16 + 16 + 16 + 2) * 128,  # codebook axis of size C
    "gpt.bair_8x16x16x4": BAIR - BAIR_POS + (8 + 16 + 16 + 4) * 128,
    "gpt.bair_4x16x16x8": BAIR - BAIR_POS + (4 + 16 + 16 + 8) * 128,
    "gpt.mmnist": MMNIST,
    "gpt.ucf101_64": UCF,
    "gpt.ucf101_128": UCF,
    "gpt.tgif": UCF,
}


def test_hand_counts_are_what_they_claim():
    # The per-layer sum and two totals worked out on paper (the breakdowns in the comments above).
    assert BAIR_LAYER == 4_265_472 and _resnet_params(3, 34, 64, 576) == 73_317_056
    assert BAIR == 142_237_184 and MMNIST == 44_095_280 and UCF == 253_174_016


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_full_size_parameter_counts(name):
    from vgbench import cards
    from vgbench.models.gpt import prior_config

    config = prior_config(cards.model(name))
    with torch.device("meta"):  # no memory: up to 253 M parameters
        model = GPT(config)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


def test_every_paper_card_is_counted():
    assert set(PARAMS) == set(_gpt_cards()) - {"gpt.quickstart"}


def test_card_errors_name_card_and_field():
    import dataclasses

    from vgbench import cards
    from vgbench.models.gpt import from_card, prior_config

    card = cards.model("gpt.bair")
    bad = dataclasses.replace(card, config={**card.config, "hidden": 510, "heads": 2})
    with pytest.raises(CardError, match=r"card gpt.bair: field 'config.hidden': .*multiple of 4, got 510"):
        prior_config(bad)
    bad = dataclasses.replace(card, config={**card.config, "shape": [8, 32, 32]})
    with pytest.raises(CardError, match=r"field 'config.shape': comes from the VQ-VAE card \(vqvae.bair\)"):
        prior_config(bad)
    bad = dataclasses.replace(card, config={**card.config, "hiden": 512})
    with pytest.raises(CardError, match=r"field 'config.hiden': unknown key"):
        prior_config(bad)
    bad = dataclasses.replace(card, vqvae="vqvae.bair_latent1x64x64", config={**card.config, "pos_embedding": "axes"})
    with pytest.raises(CardError, match=r"'config.hidden': the position embedding concatenates 3 per-axis tables"):
        prior_config(bad)
    with pytest.raises(CardError, match=r"field 'weights': a trainable prior card has no published weights"):
        from_card(card)
    with pytest.raises(CardError, match=r"'config.shape': comes from the VQ-VAE; change the VQ-VAE instead"):
        from_card(card, weights=False, shape=(2, 8, 8))


def test_quickstart_end_to_end_on_its_vqvae():
    from vgbench import models

    torch.manual_seed(0)
    vg = models.create("gpt.quickstart", weights=False, hidden=16, layers=1, ff_hidden=32)
    assert type(vg).__name__ == "VideoGPT" and vg.config.shape == tuple(vg.vqvae.latent_shape)
    c = vg.config
    video = torch.rand(2, c.frame_channels, c.frames, c.resolution, c.resolution) - 0.5
    vg.train()
    loss, logits, codes = vg.loss(video)
    assert logits.shape == (2, *c.shape, c.vocab_size)
    torch.testing.assert_close(loss, torch.tensor(math.log(c.vocab_size)))  # zero-initialised head: uniform
    loss.backward()
    assert all(p.grad is None for p in vg.vqvae.parameters())
    every_code = torch.arange(c.vocab_size).view(-1, 1, 1, 1).expand(-1, *c.shape)  # grid k holds code k only
    torch.testing.assert_close(codebook_table(vg.vqvae)[0], vg.vqvae.embed(every_code)[:, 0, 0, 0])
