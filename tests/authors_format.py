"""The authors' checkpoint format and forward pass, restated independently from the
spec (shared docs, dhif-net.md) for tests: their parameter names and shapes, a whole
pickled model under their class names, and a purely functional forward that uses those
names directly. DHIFNet must compute the same function after conversion."""
import math
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

ENCODER = [(64, 64), (64, 128), (128, 256), (256, 512), (512, 512)]
DECODER = [(1024, 512), (768, 256), (384, 128), (192, 128)]


def authors_shapes(ch=31, sf=8, stages=4, taps=7):
    shapes = {}
    for t in range(stages):
        shapes[f"lamda_{t}"], shapes[f"eta_{t}"] = [1], [1]
    shapes.update({"RT.0.weight": [ch, 3, 3, 3], "RT.0.bias": [ch], "R.0.weight": [3, ch, 3, 3], "R.0.bias": [3]})
    layers = [0] if sf == 8 else [0, 2]
    k = 12 if sf == 8 else 6
    for name in ("BT", "B"):
        for i in layers:
            shapes[f"{name}.{i}.weight"], shapes[f"{name}.{i}.bias"] = [ch, ch, k, k], [ch]
    for i, (cin, cout) in enumerate(ENCODER, 1):
        shapes.update({f"Encoder.E{i}.0.weight": [cout, cin, 3, 3], f"Encoder.E{i}.0.bias": [cout],
                       f"Encoder.E{i}.2.weight": [cout, cout, 3, 3], f"Encoder.E{i}.2.bias": [cout]})
    for i, (cin, cout) in enumerate(DECODER, 1):
        shapes.update({f"Decoder.D{i}.0.weight": [cout, cin, 3, 3], f"Decoder.D{i}.0.bias": [cout],
                       f"Decoder.D{i}.2.weight": [cout, cout, 3, 3], f"Decoder.D{i}.2.bias": [cout]})
    out = taps * ch
    for i in (1, 2, 3):
        shapes.update({f"Decoder.K_{i}.0.weight": [out, 128, 3, 3], f"Decoder.K_{i}.0.bias": [out],
                       f"Decoder.K_{i}.2.weight": [out, out, 3, 3], f"Decoder.K_{i}.2.bias": [out],
                       f"Decoder.K_{i}.4.weight": [out, out, 1, 1], f"Decoder.K_{i}.4.bias": [out]})
    shapes.update({"conv.weight": [64, ch + 3, 3, 3], "conv.bias": [64]})
    for t in range(1, stages + 1):
        shapes.update({f"Den_con{t}.weight": [64, 64 * t, 3, 3], f"Den_con{t}.bias": [64]})
    return shapes


def authors_state_dict(ch=31, sf=8, stages=4, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in authors_shapes(ch, sf, stages).items():
        if name.startswith("lamda"):
            value = 1 + 0.01 * torch.randn(shape, generator=generator, dtype=dtype)
        elif name.startswith("eta"):
            value = 0.1 + 0.01 * torch.randn(shape, generator=generator, dtype=dtype)
        else:
            fan = shape[1] * math.prod(shape[2:]) if len(shape) > 1 else shape[0]
            value = torch.randn(shape, generator=generator, dtype=dtype) / math.sqrt(fan)
        state[name] = value
    return state


def _conv(x, state, name, stride=1, padding=1):
    return F.conv2d(x, state[name + ".weight"], state[name + ".bias"], stride, padding)


def _stack_filter(taps, padded, slicer):
    """The authors' filter: K shifted slices of the padded cube, times the taps, summed."""
    return torch.sum(taps * torch.stack([slicer(padded, i) for i in range(taps.shape[1])], dim=1), dim=1)


def authors_forward(state, msi, lr, ch=31, sf=8, stages=4):
    """Their HSI_Fusion.forward(Y, X) restated functionally: Y = HR-MSI, X = LR-HSI."""
    lrelu, relu = (lambda x: F.leaky_relu(x, 0.01)), F.relu
    z = F.interpolate(lr, scale_factor=sf, mode="bicubic", align_corners=False)
    feats = []
    for t in range(stages):
        res1 = lrelu(_conv(lrelu(_conv(z, state, "R.0")) - msi, state, "RT.0"))
        if sf == 8:
            bz = lrelu(_conv(z, state, "B.0", 8, 2))
            res2 = lrelu(F.conv_transpose2d(bz - lr, state["BT.0.weight"], state["BT.0.bias"], 8, 2))
        else:
            bz = lrelu(_conv(lrelu(_conv(z, state, "B.0", 4, 1)), state, "B.2", 4, 1))
            up = lrelu(F.conv_transpose2d(bz - lr, state["BT.0.weight"], state["BT.0.bias"], 4, 1))
            res2 = lrelu(F.conv_transpose2d(up, state["BT.2.weight"], state["BT.2.bias"], 4, 1))
        feats.append(_conv(torch.cat([z, msi], 1), state, "conv"))
        fused = _conv(torch.cat(feats, 1), state, f"Den_con{t + 1}")
        enc = []
        x = fused
        for i in range(1, 6):
            x = x if i == 1 else F.avg_pool2d(x, 2)
            x = relu(_conv(relu(_conv(x, state, f"Encoder.E{i}.0")), state, f"Encoder.E{i}.2"))
            enc.append(x)
        d = enc[4]
        for i, skip in zip(range(1, 5), [enc[3], enc[2], enc[1], enc[0]]):
            d = torch.cat([skip, F.interpolate(d, scale_factor=2, mode="bicubic")], 1)
            d = relu(_conv(relu(_conv(d, state, f"Decoder.D{i}.0")), state, f"Decoder.D{i}.2"))
        ks = []
        b, _, h, w = z.shape
        for i in (1, 2, 3):
            k = _conv(relu(_conv(relu(_conv(d, state, f"Decoder.K_{i}.0")), state, f"Decoder.K_{i}.2")), state,
                      f"Decoder.K_{i}.4", padding=0)
            ks.append(F.normalize(k.view(b, 7, ch, h, w), dim=1))
        u = _stack_filter(ks[0], F.pad(z, [3, 3, 0, 0], mode="replicate"), lambda p, i: p[..., i:i + w])
        u = _stack_filter(ks[1], F.pad(u, [0, 0, 3, 3], mode="replicate"), lambda p, i: p[:, :, i:i + h])
        u = _stack_filter(ks[2], F.pad(u, [0, 0, 0, 0, 3, 3]), lambda p, i: p[:, i:i + ch])
        z = z - 2 * state[f"eta_{t}"] * (res1 + res2 + state[f"lamda_{t}"] * (z - u))
    return z


def pickled_authors_model(state, path, ch=31, sf=8, stages=4):
    """torch.save(model) of a module tree with the authors' class and attribute names,
    then the classes are removed so that loading cannot use them."""
    module = types.ModuleType("Model")

    def make(name):
        cls = type(name, (nn.Module,), {"__module__": "Model"})
        setattr(module, name, cls)
        return cls

    fusion_cls, encoder_cls, decoder_cls = make("HSI_Fusion"), make("Encoder"), make("Decoder")
    sys.modules["Model"] = module
    try:
        model, encoder, decoder = fusion_cls(), encoder_cls(), decoder_cls()

        def seq(*layers):
            return nn.Sequential(*layers)

        def conv(name, **kw):
            w = state[name + ".weight"]
            return nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], **kw)

        def pair(prefix):
            return seq(conv(prefix + ".0", padding=1), nn.ReLU(), conv(prefix + ".2", padding=1), nn.ReLU())

        model.RT = seq(conv("RT.0", padding=1), nn.LeakyReLU())
        model.R = seq(conv("R.0", padding=1), nn.LeakyReLU())
        if sf == 8:
            model.BT = seq(nn.ConvTranspose2d(ch, ch, 12, 8, 2), nn.LeakyReLU())
            model.B = seq(nn.Conv2d(ch, ch, 12, 8, 2), nn.LeakyReLU())
        else:
            model.BT = seq(nn.ConvTranspose2d(ch, ch, 6, 4, 1), nn.LeakyReLU(), nn.ConvTranspose2d(ch, ch, 6, 4, 1),
                           nn.LeakyReLU())
            model.B = seq(nn.Conv2d(ch, ch, 6, 4, 1), nn.LeakyReLU(), nn.Conv2d(ch, ch, 6, 4, 1), nn.LeakyReLU())
        for i in range(1, 6):
            setattr(encoder, f"E{i}", pair(f"Encoder.E{i}"))
        for i in range(1, 5):
            setattr(decoder, f"D{i}", pair(f"Decoder.D{i}"))
        for i in (1, 2, 3):
            p = f"Decoder.K_{i}"
            setattr(decoder, f"K_{i}", seq(conv(p + ".0", padding=1), nn.ReLU(), conv(p + ".2", padding=1), nn.ReLU(),
                                           conv(p + ".4")))
        model.Encoder, model.Decoder = encoder, decoder
        model.conv = conv("conv", padding=1)
        for t in range(1, stages + 1):
            setattr(model, f"Den_con{t}", conv(f"Den_con{t}", padding=1))
        for t in range(stages):
            setattr(model, f"lamda_{t}", nn.Parameter(torch.ones(1)))
            setattr(model, f"eta_{t}", nn.Parameter(torch.ones(1)))
        model.Ch, model.s, model.sf, model.kernel_size = ch, stages, sf, [7, 7, 7]
        model = model.to(next(iter(state.values())).dtype)
        model.load_state_dict(state, strict=True)
        torch.save(model, path)
    finally:
        del sys.modules["Model"]
