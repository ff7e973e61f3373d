"""The VideoGPT VQ-VAE: every card builds and trains a step, parameter counts derived by hand, the reference's
"same" padding, the EMA codebook against its formulas, saved init state, clear errors, DDP equals one process."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from vgbench import cards
from vgbench.errors import CardError, InputError, VgbenchError
from vgbench.models import create
from vgbench.models.codebook import EMACodebook
from vgbench.models.layers import SamePadConv3d, SamePadConvTranspose3d, same_pads
from vgbench.models.vqvae import VQVAE, VQVAEConfig, card_summary, count_parameters, from_card

VQVAE_CARDS = [n for n in cards.names("models") if cards.model(n).arch == "videogpt_vqvae"]
# every card the models contract (helpers/MODELS_CONTRACT.md) names
CONTRACT_CARDS = {
    "vqvae.mmnist", "vqvae.bair", "vqvae.bair_noattn", "vqvae.bair_codes256", "vqvae.bair_codes4096",
    "vqvae.bair_16x16x16x2", "vqvae.bair_8x16x16x4", "vqvae.bair_4x16x16x8", "vqvae.ucf101_64",
    "vqvae.ucf101_128", "vqvae.tgif", "vqvae.quickstart",
    *(f"vqvae.bair_latent{s}" for s in ("4x16x16", "16x8x8", "8x16x16", "1x64x64", "4x32x32", "16x16x16",
                                         "2x64x64", "4x64x64", "16x32x32")),
}  # fmt: skip
TINY = dict(hidden=24, res_hidden=16, embedding_dim=8, n_codes=32)  # reduced width; 24 = 3 axes x 8, 2 heads x 12


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def tiny_config(**kw) -> VQVAEConfig:
    base = dict(in_channels=1, frames=4, resolution=16, downsample=(2, 2, 2), res_layers=1, n_codes=16)
    return VQVAEConfig(**{**TINY, **base, **kw})


# ----------------------------------------------------------------------------------------------------------
# Cards


def test_contract_cards_exist():
    assert set(VQVAE_CARDS) == CONTRACT_CARDS


@pytest.mark.parametrize("name", sorted(CONTRACT_CARDS))
def test_card_builds_reduced_width_and_trains_one_step(name):
    torch.manual_seed(0)
    card = cards.model(name)
    model = create(card, weights=False, resolution=16, **TINY)  # reduced width and frame size; frames kept
    cfg = model.config
    assert cfg.downsample == tuple(card.config["downsample"]) and cfg.n_codebooks == card.config.get("n_codebooks", 1)
    assert card.training is not None and card.sources and card.paper and card.license
    x = torch.rand(1, cfg.in_channels, *cfg.input_shape) - 0.5
    out = model(x)
    assert out.recon.shape == x.shape
    grid = (16 // cfg.downsample[0], 16 // cfg.downsample[1], 16 // cfg.downsample[2])
    assert tuple(out.codes.shape) == (1, *grid, *((cfg.n_codebooks,) if cfg.n_codebooks > 1 else ()))
    assert out.codes.dtype == torch.int64
    # at full size the card's stated latent shape is the one its config produces (validated when built)
    assert cards.build_config(VQVAEConfig, card).latent_shape == tuple(card.config["latent"])
    assert torch.isfinite(out.loss) and 1 <= float(out.perplexity) <= cfg.n_codes and 0 < float(out.usage) <= 1
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


# Full-size parameter counts, derived layer by layer (weights + biases; LayerNorm = gain + bias = 2C).
# Residual block with attention (hidden 240, residual units 128):
#   LN(240) 480 + conv3 240->128 no bias 240*128*27 = 829,440 + LN(128) 256 + conv1 128->240 no bias 30,720
#   + LN(240) 480 + 3 axis attentions x (qkv 240*720 = 172,800 no bias + out 240*240 + 240 = 57,840) = 691,920
ATTN_BLOCK = 480 + 240 * 128 * 27 + 256 + 128 * 240 + 480 + 3 * (240 * 3 * 240 + 240 * 240 + 240)
CONV_BLOCK = 480 + 240 * 128 * 27 + 256 + 128 * 240  # the same without attention and its norm
STACK4 = 4 * ATTN_BLOCK + 480  # 4 blocks + final LN(240)
ENC_CONV1 = 3 * 240 * 27 + 240  # first strided conv 3->240, kernel 3 (Appendix A), bias
ENC_CONV = 240 * 240 * 27 + 240  # further strided convs 240->240, kernel 3
CONV_LAST = 240 * 240 * 27 + 240  # encoder 3x3x3
PRE_VQ = 240 * 256 + 256  # 1x1x1 240->256
POST_VQ = 256 * 240 * 27 + 240  # 3x3x3 256->240
CONVT = 240 * 240 * 64 + 240  # transposed 240->240, kernel 4
CONVT_LAST = 240 * 3 * 64 + 3  # transposed 240->3, kernel 4


def pos(t, h, w):
    return (t + h + w) * 80  # three per-axis tables of 240 / 3 = 80 channels


BAIR = ENC_CONV1 + CONV_LAST + 2 * STACK4 + PRE_VQ + POST_VQ + CONVT_LAST + pos(8, 32, 32)  # 2x2x2: 1 strided conv


def n_convs(latent):  # strided convs (and transposed convs) = max log2 of the per-axis downsampling of 16x64x64
    return max(int(math.log2(s / n)) for s, n in zip((16, 64, 64), latent, strict=True))


def bair_with(latent, n_codebooks=1):
    """BAIR card at another latent grid: n strided convs, pos tables, pre/post convs for C x 256 channels."""
    n = n_convs(latent)
    pre = 240 * 256 * n_codebooks + 256 * n_codebooks
    post = 256 * n_codebooks * 240 * 27 + 240
    return (ENC_CONV1 + (n - 1) * ENC_CONV + CONV_LAST + 2 * STACK4 + pre + post + (n - 1) * CONVT + CONVT_LAST
            + pos(*latent))  # fmt: skip


HAND_COUNTS = {
    "vqvae.bair": BAIR,  # = 15,775,107
    "vqvae.bair_codes256": BAIR,  # codes are buffers, not parameters
    "vqvae.bair_codes4096": BAIR,
    # Table 3: 7 conv blocks per stack, no attention, no position embedding
    "vqvae.bair_noattn": BAIR - 2 * STACK4 - pos(8, 32, 32) + 2 * (7 * CONV_BLOCK + 480),
    # Moving MNIST: 1 channel, 4x4x4 (2 strided convs), 2 conv blocks, 512 x 64 codes
    "vqvae.mmnist": (1 * 240 * 27 + 240) + ENC_CONV + CONV_LAST + 2 * (2 * CONV_BLOCK + 480) + (240 * 64 + 64)
    + (64 * 240 * 27 + 240) + CONVT + (240 * 1 * 64 + 1),
    # quickstart: hidden 48, residual units 32, 1 conv block, 128 x 32 codes, 1 channel, 1x8x8 (3 strided convs and
    # 3 transposed convs, one more of each than 4x4x4), frame-wise: 1x3x3 (9 taps) and 1x4x4 (16 taps) kernels
    "vqvae.quickstart": (1 * 48 * 9 + 48) + 2 * (48 * 48 * 9 + 48) + (48 * 48 * 9 + 48) + (48 * 48 * 16 + 48)
    + 2 * ((96 + 48 * 32 * 9 + 64 + 32 * 48) + 96) + (48 * 32 + 32) + (32 * 48 * 9 + 48) + (48 * 48 * 16 + 48)
    + (48 * 1 * 16 + 1),
    "vqvae.ucf101_64": bair_with((4, 32, 32)),
    "vqvae.tgif": bair_with((4, 32, 32)),
    "vqvae.ucf101_128": bair_with((4, 32, 32)),  # 4x4x4 on 16x128x128: also 2 strided convs, tables 4+32+32
    "vqvae.bair_16x16x16x2": bair_with((16, 16, 16), 2),
    "vqvae.bair_8x16x16x4": bair_with((8, 16, 16), 4),
    "vqvae.bair_4x16x16x8": bair_with((4, 16, 16), 8),
    **{f"vqvae.bair_latent{t}x{h}x{w}": bair_with((t, h, w))
       for t, h, w in ((4, 16, 16), (16, 8, 8), (8, 16, 16), (1, 64, 64), (4, 32, 32), (16, 16, 16), (2, 64, 64),
                       (4, 64, 64), (16, 32, 32))},
}  # fmt: skip


def test_hand_counts_cover_every_card_and_known_totals():
    assert set(HAND_COUNTS) == CONTRACT_CARDS
    assert BAIR == 15_775_107
    # Table 3 "matched parameter count": 7 conv blocks per stack lands within 2.5% (6 or 8 would be 13% / 8.5% off)
    assert abs(HAND_COUNTS["vqvae.bair_noattn"] / BAIR - 1) < 0.025


@pytest.mark.parametrize("name", sorted(CONTRACT_CARDS))
def test_full_size_parameter_count(name):
    card = cards.model(name)
    summary = card_summary(card)  # the full-size network built on the meta device
    assert summary["params"] == HAND_COUNTS[name]
    assert summary["latent"] == "x".join(map(str, card.config["latent"]))


def test_meta_count_equals_a_real_build():
    assert count_parameters(create("vqvae.bair", weights=False)) == HAND_COUNTS["vqvae.bair"]


def test_vg_architecture_reproduces_vg_parameter_count():
    # The building blocks configured like VG (BatchNorm, residual units 120, 4x4x4 strided convs, 1x1x1 post-vq conv,
    # no position embedding) give VG's count: 21,141,619 trainable parameters, measured by instantiating
    # wilson1yan/VideoGPT@733d2b1 VQVAE(n_hiddens=240, n_res_layers=4, downsample=4x4x4, 4x2x2 or 2x4x4) on CPU
    # (videogpt.md §3 "21.14 M for every downsample config").
    vg_arch = dict(norm="batch", res_hidden=120, encoder_kernel=4, post_vq_kernel=1, pos_embedding=False)
    for ds in ((4, 4, 4), (4, 2, 2), (2, 4, 4)):
        assert count_parameters(VQVAE(VQVAEConfig(downsample=ds, n_codes=2048, **vg_arch))) == 21_141_619


# ----------------------------------------------------------------------------------------------------------
# Padding


def test_same_pads_put_the_extra_pad_in_front():
    # videogpt.md §3: total k - s, (p//2 + p%2) before, p//2 after
    assert same_pads(4, 2) == ((1, 1),) * 3
    assert same_pads(3, 2) == ((1, 0),) * 3
    assert same_pads(4, 1) == ((2, 1),) * 3
    assert same_pads((3, 4, 1), (1, 2, 1)) == ((1, 1), (1, 1), (0, 0))


@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, (2, 1, 2)), (4, 2), (4, (2, 1, 1)), (4, 1), (1, 1), (2, 2)])
def test_same_pad_conv_equals_explicit_front_heavy_pad(kernel, stride):
    torch.manual_seed(0)
    conv = SamePadConv3d(3, 5, kernel, stride)
    x = torch.randn(2, 3, 4, 6, 8)
    k = (kernel,) * 3
    s = stride if isinstance(stride, tuple) else (stride,) * 3
    pads = []
    for kk, ss in zip(reversed(k), reversed(s), strict=True):  # F.pad order: last axis first
        p = kk - ss
        pads += [p - p // 2, p // 2]  # the extra pad in front
    expected = F.conv3d(F.pad(x, pads), conv.conv.weight, conv.conv.bias, stride=s)
    got = conv(x)
    assert got.shape == (2, 5, *(math.ceil(n / st) for n, st in zip((4, 6, 8), s, strict=True)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [(2, 2, 2), (2, 1, 1), (1, 2, 2), (1, 1, 1)])
def test_transposed_conv_equals_reference_form(stride):
    # default (shrunk crop, no both-side zero rows) vs the reference: F.pad front-heavy + ConvTranspose3d(padding=k-1)
    torch.manual_seed(0)
    convt = SamePadConvTranspose3d(4, 3, 4, stride)
    x = torch.randn(2, 4, 3, 5, 4, requires_grad=True)
    ref_pad = []
    for ss in reversed(stride):
        p = 4 - ss
        ref_pad += [p - p // 2, p // 2]
    expected = F.conv_transpose3d(F.pad(x, ref_pad), convt.convt.weight, convt.convt.bias, stride, padding=3)
    got = convt(x)
    assert got.shape == (2, 3, 3 * stride[0], 5 * stride[1], 4 * stride[2]) == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(got)
    (gx,) = torch.autograd.grad(got, x, g)
    (ex,) = torch.autograd.grad(expected, x, g)
    torch.testing.assert_close(gx, ex, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(convt(x, reference=True), expected)


# ----------------------------------------------------------------------------------------------------------
# Codebook


def _z(vectors):
    """(M, D) vectors -> encoder-output layout (1, D, 1, 1, M)."""
    return torch.tensor(vectors, dtype=torch.float32).t().reshape(1, -1, 1, 1, len(vectors))


def test_codebook_ema_update_equals_formula_on_hand_example():
    cb = EMACodebook(n_codes=3, dim=2).train()
    with torch.no_grad():
        cb.embeddings.copy_(torch.tensor([[[0.0, 0.0], [10.0, 10.0], [50.0, 50.0]]]))
        cb.z_avg.copy_(cb.embeddings)
        cb.N.copy_(torch.tensor([[2.0, 2.0, 2.0]]))  # every code stays alive (N >= 1 after the decay)
        cb.initialized.fill_(True)
    out = cb(_z([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]))
    # nearest codes: 0, 0, 1 -> counts (2, 1, 0), sums ((1, 1), (9, 9), (0, 0))
    assert out.codes.flatten().tolist() == [0, 0, 1]
    N = [0.99 * 2 + 0.01 * 2, 0.99 * 2 + 0.01 * 1, 0.99 * 2 + 0.01 * 0]  # 2.0, 1.99, 1.98
    z_avg = [0.99 * 0 + 0.01 * 1, 0.99 * 10 + 0.01 * 9, 0.99 * 50 + 0.01 * 0]  # per coordinate (both equal)
    n, eps = sum(N), 1e-7
    w = [(Nk + eps) / (n + 3 * eps) * n for Nk in N]  # Laplace-smoothed counts
    expected = torch.tensor([[[z / wk] * 2 for z, wk in zip(z_avg, w, strict=True)]])
    torch.testing.assert_close(cb.N, torch.tensor([N]), rtol=0, atol=1e-6)
    torch.testing.assert_close(cb.z_avg, torch.tensor([[[z] * 2 for z in z_avg]]), rtol=0, atol=1e-5)
    torch.testing.assert_close(cb.embeddings, expected.float(), rtol=1e-6, atol=1e-6)
    # commitment 0.25 * mean((z - e)^2) with the pre-update codes: squared errors 1 + 1 + 2 over 6 values
    assert float(out.commitment_loss) == pytest.approx(0.25 * 4 / 6, rel=1e-6)
    p = [2 / 3, 1 / 3]
    assert float(out.perplexity) == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)), rel=1e-5)
    assert float(out.usage) == pytest.approx(2 / 3)


def test_dead_code_restart_takes_a_batch_vector_and_leaves_its_statistics():
    torch.manual_seed(0)
    cb = EMACodebook(n_codes=3, dim=2).train()
    with torch.no_grad():
        cb.embeddings.copy_(torch.tensor([[[0.0, 0.0], [10.0, 10.0], [50.0, 50.0]]]))
        cb.z_avg.copy_(cb.embeddings)
        cb.N.copy_(torch.tensor([[2.0, 2.0, 0.5]]))  # code 2: 0.99 * 0.5 < 1 after the update -> restarted
        cb.initialized.fill_(True)
    batch = [[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]
    cb(_z(batch))
    assert cb.embeddings[0, 2].tolist() in batch  # 3 vectors >= 3 codes: no tiling noise
    assert float(cb.N[0, 2]) == pytest.approx(0.99 * 0.5)  # statistics untouched by the restart (VG, VGP)
    assert cb.z_avg[0, 2].tolist() == pytest.approx([0.99 * 50] * 2)
    assert float(cb.N[0, 0]) == pytest.approx(2.0)  # live codes keep their EMA values


def test_init_from_first_training_batch_and_tiling():
    torch.manual_seed(0)
    cb = EMACodebook(n_codes=8, dim=2).train()
    batch = [[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]  # 3 vectors < 8 codes: tiled 3x with N(0, (0.01/sqrt 2)^2) noise
    with torch.no_grad():
        cb._init(cb._flatten(_z(batch)))
    assert bool(cb.initialized) and cb.N.tolist() == [[1.0] * 8]
    torch.testing.assert_close(cb.z_avg, cb.embeddings)
    near = torch.cdist(cb.embeddings[0], torch.tensor(batch)).min(-1).values
    assert near.max() < 0.05  # every code is a (noised) batch vector; noise std 0.007 per coordinate
    assert near.min() > 0  # ... and noised


def test_several_codebooks_quantise_their_own_channel_slice():
    cb = EMACodebook(n_codes=2, dim=1, n_codebooks=2).eval()
    with torch.no_grad():
        cb.embeddings.copy_(torch.tensor([[[0.0], [1.0]], [[5.0], [-5.0]]]))
        cb.initialized.fill_(True)
    z = torch.tensor([0.9, -4.0]).view(1, 2, 1, 1, 1)  # channel 0 -> codebook 0, channel 1 -> codebook 1
    out = cb(z)
    assert out.codes.flatten().tolist() == [1, 1]
    assert out.quantized.flatten().tolist() == [1.0, -5.0]


def test_init_state_survives_state_dict_round_trip():
    torch.manual_seed(0)
    cfg = tiny_config()
    a = VQVAE(cfg).train()
    x = torch.rand(2, 1, 4, 16, 16) - 0.5
    a(x)  # first training forward: init + one EMA step
    state = a.state_dict()
    assert bool(state["codebook.initialized"]) and "codebook.N" in state and "codebook.z_avg" in state
    b = VQVAE(cfg).train()
    assert not bool(b.codebook.initialized)
    b.load_state_dict(state)
    assert bool(b.codebook.initialized)
    torch.manual_seed(1)
    a(x)
    torch.manual_seed(1)
    b(x)  # no re-initialisation after loading: both continue identically
    torch.testing.assert_close(b.codebook.embeddings, a.codebook.embeddings, rtol=0, atol=0)
    torch.testing.assert_close(b.codebook.N, a.codebook.N, rtol=0, atol=0)
    # and a fresh (uninitialised) codebook would have re-drawn its codes from the batch instead
    c = VQVAE(cfg).train()
    c.load_state_dict({k: v for k, v in state.items() if k != "codebook.initialized"}, strict=False)
    torch.manual_seed(1)
    c(x)
    assert not torch.equal(c.codebook.embeddings, a.codebook.embeddings)


def test_eval_and_encode_never_update_the_codebook():
    torch.manual_seed(0)
    m = VQVAE(tiny_config()).train()
    x = torch.rand(2, 1, 4, 16, 16) - 0.5
    m(x)
    before = {k: v.clone() for k, v in m.codebook.state_dict().items()}
    codes = m.encode(x)  # training mode outside, no update inside
    m.eval()
    out = m(x)
    for k, v in m.codebook.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(codes, out.codes) and codes.shape == (2, 2, 8, 8)
    torch.testing.assert_close(m.decode(codes), out.recon, rtol=1e-5, atol=1e-5)
    assert m.embed(codes).shape == (2, 2, 8, 8, 8)


def test_embed_and_decode_with_several_codebooks():
    torch.manual_seed(0)
    m = VQVAE(tiny_config(n_codebooks=3)).eval()
    assert m.latent_shape == (2, 8, 8, 3)
    x = torch.rand(1, 1, 4, 16, 16) - 0.5
    out = m(x)
    assert out.codes.shape == (1, 2, 8, 8, 3)
    e = m.embed(out.codes)
    assert e.shape == (1, 2, 8, 8, 3, 8)
    torch.testing.assert_close(e[0, 1, 2, 3, 2], m.codebook.embeddings[2, out.codes[0, 1, 2, 3, 2]])
    torch.testing.assert_close(m.decode(out.codes), out.recon, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# Overfitting a fixed batch


def _blobs() -> torch.Tensor:
    """Two 4x16x16 one-channel clips of a moving Gaussian blob, in [-0.5, 0.5]."""
    t = torch.arange(4.0).view(4, 1, 1)
    y = torch.arange(16.0).view(1, 16, 1)
    x = torch.arange(16.0).view(1, 1, 16)

    def blob(cx, cy, vx, vy):
        return torch.exp(-((x - cx - vx * t) ** 2 + (y - cy - vy * t) ** 2) / 8)

    return torch.stack([blob(5, 6, 1, 0.5), blob(10, 4, -1, 1)])[:, None] - 0.5  # (2, 1, 4, 16, 16)


@pytest.mark.slow
def test_overfits_a_fixed_batch_with_all_codes_alive():
    torch.manual_seed(0)
    m = VQVAE(tiny_config()).train()  # 16 codes for 2 x 2x8x8 = 256 latents
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    x = _blobs()
    nmse, usage = [], []
    for _ in range(150):
        out = m(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        nmse.append(out.recon_loss.item())
        usage.append(out.usage.item())
    assert nmse[0] / nmse[-1] >= 10, (nmse[0], nmse[-1])  # issue 11: NMSE falls at least 10x
    assert min(usage) < 1.0  # some codes went unused during training ...
    assert bool((m.codebook.N >= 1).all())  # ... and after restarts none is dead on this batch
    m.eval()
    assert float(m(x).usage) >= 0.5  # and the batch uses at least half the codebook at the end


def test_frame_wise_codes_and_reconstructions_of_a_frame_depend_on_that_frame_only():
    torch.manual_seed(0)
    m = VQVAE(tiny_config(downsample=(1, 2, 2), attention=False, frame_wise=True, restart_threshold=0.0))
    x = torch.rand(2, 1, 4, 16, 16) - 0.5
    m.train()(x)  # initialises the codebook from this batch
    m.eval()
    assert m.time_reach() == 0
    y = x.clone()
    y[:, :, 2] = torch.rand(2, 1, 16, 16) - 0.5  # frame 2 replaced
    with torch.no_grad():
        a, b = m.encode(x), m.encode(y)  # (2, 4, 8, 8)
        changed = (a != b).flatten(2).any(-1).any(0)
        assert changed.tolist() == [False, False, True, False]  # the codes of frame 2 alone
        ra, rb = m.decode(a), m.decode(b)  # (2, 1, 4, 16, 16)
    differs = (ra - rb).abs().amax(dim=(0, 1, 3, 4)) > 0
    assert differs.tolist() == [False, False, True, False]
    # the same model without frame_wise spreads one frame's change to its neighbours
    torch.manual_seed(0)
    m3 = VQVAE(tiny_config(downsample=(1, 2, 2), attention=False, restart_threshold=0.0))
    m3.train()(x)
    with torch.no_grad():
        assert (m3.eval().encode(x) != m3.encode(y)).flatten(2).any(-1).any(0).sum() > 1


# ----------------------------------------------------------------------------------------------------------
# Errors


def test_clip_not_divisible_by_downsampling():
    m = VQVAE(tiny_config(attention=False))
    with pytest.raises(InputError, match=r"clip size \(T, H, W\) = \(4, 15, 16\) is not divisible by the downsampling"):
        m(torch.zeros(1, 1, 4, 15, 16))
    with pytest.raises(InputError, match=r"float \(B, 1, T, H, W\)"):
        m(torch.zeros(1, 3, 4, 16, 16))
    with pytest.raises(InputError, match="learned for the latent grid"):
        VQVAE(tiny_config())(torch.zeros(1, 1, 8, 16, 16))  # divisible, but not the position embedding's grid


def test_codes_out_of_range_and_bad_shape():
    m = VQVAE(tiny_config())
    codes = torch.zeros(1, 2, 8, 8, dtype=torch.int64)
    codes[0, 0, 0, 0] = 16
    with pytest.raises(InputError, match=r"codes out of range: min 0, max 16; this codebook has codes 0..15"):
        m.decode(codes)
    with pytest.raises(InputError, match=r"codes must have shape \(B, 2, 8, 8\)"):
        m.decode(torch.zeros(1, 8, 8, dtype=torch.int64))
    with pytest.raises(InputError, match="integer tensor"):
        m.embed(torch.zeros(1, 2, 8, 8))


def _card_file(tmp_path, name="vqvae.test", **config):
    data = yaml.safe_load((cards._index("models")["vqvae.bair"]).read_text())
    data["name"] = name
    data["config"].update(config)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return cards.load_card_file(path, "models")


def test_card_errors_name_card_and_field(tmp_path):
    with pytest.raises(CardError, match=r"card vqvae.test: field 'config.hiden': unknown key"):
        from_card(_card_file(tmp_path, hiden=3), weights=False)
    with pytest.raises(CardError, match=r"'config.latent': does not match input \(16, 64, 64\) / downsample"):
        from_card(_card_file(tmp_path, latent=[4, 32, 32]), weights=False)
    with pytest.raises(CardError, match=r"'config.downsample': needs three powers of two.*got \[3, 2, 2\]"):
        from_card(_card_file(tmp_path, downsample=[3, 2, 2], latent=None), weights=False)
    with pytest.raises(CardError, match=r"'config.downsample': does not divide the input \(frames = 16\)"):
        from_card(_card_file(tmp_path, downsample=[32, 2, 2], latent=None), weights=False)
    with pytest.raises(CardError, match=r"'config.hidden': the position embedding concatenates 3"):
        from_card(_card_file(tmp_path, hidden=128), weights=False)
    with pytest.raises(CardError, match=r"'config.latent'.*with 2 codebooks; expected \[8, 32, 32, 2\]"):
        from_card(_card_file(tmp_path, n_codebooks=2), weights=False)
    with pytest.raises(CardError, match=r"'config.frame_wise': convs one frame deep cannot downsample time.*"
                       r"or frame_wise: false"):  # fmt: skip
        from_card(_card_file(tmp_path, frame_wise=True, attention=False), weights=False)  # vqvae.bair downsamples time
    with pytest.raises(CardError, match=r"'config.frame_wise': axial attention along time.*attention: false, or"):
        from_card(_card_file(tmp_path, frame_wise=True, downsample=[1, 8, 8], latent=None), weights=False)
    with pytest.raises(CardError, match=r"'config.recon_variance': wrong type"):
        from_card(_card_file(tmp_path, recon_variance="dataset"), weights=False)


def test_trainable_card_has_no_weights_and_measured_variance_must_be_set():
    with pytest.raises(VgbenchError, match=r"vqvae.bair has no published weights.*vgbench train"):
        create("vqvae.bair")
    m = VQVAE(tiny_config(recon_variance="measured"))
    x = torch.rand(1, 1, 4, 16, 16) - 0.5
    with pytest.raises(VgbenchError, match="recon_variance is 'measured' and has not been set"):
        m(x)
    m.set_recon_variance(0.03)
    out = m(x)
    assert out.recon_loss.item() == pytest.approx(F.mse_loss(out.recon, x).item() / 0.03, rel=1e-5)
    assert VQVAE(tiny_config(recon_variance="measured")).load_state_dict(m.state_dict()) is not None


# ----------------------------------------------------------------------------------------------------------
# DDP: counts and sums all-reduced, init and restarts broadcast from rank 0


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str, state: dict, batch: torch.Tensor) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        half = batch.shape[0] // world
        cb = EMACodebook(n_codes=8, dim=4).train()
        cb.load_state_dict(state)
        cb(batch[rank * half : (rank + 1) * half])  # EMA with all-reduced counts and sums
        fresh = EMACodebook(n_codes=8, dim=4).train()
        torch.manual_seed(100 + rank)  # different RNG per rank: init rows are drawn by rank 0 anyway
        fresh(batch[rank * half : (rank + 1) * half])
        tiled = EMACodebook(n_codes=100, dim=4).train()  # more codes than the 72 global rows: the tiling path
        torch.manual_seed(200 + rank)
        tiled(batch[rank * half : (rank + 1) * half])
        out = {"ema": cb.state_dict(), "fresh": fresh.state_dict(), "tiled": tiled.state_dict()}
        torch.save(out, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path):
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    cb = EMACodebook(n_codes=8, dim=4)
    with torch.no_grad():
        cb.embeddings.copy_(torch.randn(1, 8, 4))
        cb.z_avg.copy_(cb.embeddings * 3)
        cb.N.fill_(3.0)  # every code stays alive (0.99 * 3 >= 1): no restart, so the step is deterministic
        cb.initialized.fill_(True)
    state = {k: v.clone() for k, v in cb.state_dict().items()}
    batch = torch.randn(4, 4, 2, 3, 3)  # (B, D, T, H, W)
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), state, batch), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    one = EMACodebook(n_codes=8, dim=4).train()
    one.load_state_dict(state)
    one(batch)
    for key in ("embeddings", "N", "z_avg"):
        torch.testing.assert_close(r0["ema"][key], one.state_dict()[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(r1["ema"][key], one.state_dict()[key], rtol=0, atol=1e-6)
        assert torch.equal(r0["fresh"][key], r1["fresh"][key]), key  # broadcast init: the ranks agree exactly
    assert bool(r0["fresh"]["initialized"]) and bool(r1["fresh"]["initialized"])
    # init (and restarts) draw from the global batch with rank 0's RNG: the rows one process draws
    for name, codes, seed in (("fresh", 8, 100), ("tiled", 100, 200)):
        single = EMACodebook(n_codes=codes, dim=4).train()
        torch.manual_seed(seed)
        single(batch)
        for key in ("embeddings", "N", "z_avg"):
            torch.testing.assert_close(r0[name][key], single.state_dict()[key], rtol=0, atol=1e-6)
