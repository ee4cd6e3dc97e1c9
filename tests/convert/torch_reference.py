"""A small PyTorch re-implementation of NVlabs/SPADE's (and tzt101/CLADE's) networks, for the importer tests.

Written from reading NVlabs/SPADE (``models/networks/{generator,architecture,
normalization,discriminator,encoder}.py``, commit fecacc9): the module tree,
attribute names and registration order are the official ones, so
``state_dict()`` has the official key names, shapes and order. Differences,
none of which changes a key or a number:
  * ``nn.BatchNorm2d(affine=False)`` stands in for the official
    ``SynchronizedBatchNorm2d(affine=False)`` (same buffers, same math on one
    device);
  * options come from a ``SPADEConfig`` instead of the official ``opt``;
  * the SPADE embedding width (official: hard-coded 128) follows
    ``config.spade_hidden`` so that tests can run smaller networks;
  * CLADE (``config.norm_mode == "clade"``): ``SPADELight`` / ``ClassAffine``
    with tzt101/CLADE's module names (``class_specified_affine.weight``,
    ``.dist_conv_w``, ``inst_conv``), its forward (``affine_embed``) and the
    block's convs one channel wider with instance maps;
  * ``parametrized=True`` uses ``torch.nn.utils.parametrizations.spectral_norm``
    (the newer API, other key names) instead of ``torch.nn.utils.spectral_norm``.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _spectral(module, parametrized=False):
    if parametrized:
        return nn.utils.parametrizations.spectral_norm(module)
    return nn.utils.spectral_norm(module)


class SPADE(nn.Module):
    def __init__(self, norm, norm_nc, label_nc, kernel_size=3, nhidden=128):
        super().__init__()
        if norm == "instance":
            self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        else:  # "batch" / "syncbatch"
            self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        pw = kernel_size // 2
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size, padding=pw), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pw)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pw)

    def forward(self, x, segmap):
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.size()[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class ClassAffine(nn.Module):
    """tzt101/CLADE's class-wise affine (its ``affine_embed`` forward), with ``--add_dist``."""

    def __init__(self, label_nc, affine_nc, add_dist=False):
        super().__init__()
        self.add_dist = add_dist
        self.weight = nn.Parameter(torch.Tensor(label_nc, affine_nc))
        self.bias = nn.Parameter(torch.Tensor(label_nc, affine_nc))
        nn.init.uniform_(self.weight)
        nn.init.zeros_(self.bias)
        if add_dist:
            self.dist_conv_w = nn.Conv2d(2, 1, kernel_size=1, padding=0)
            self.dist_conv_b = nn.Conv2d(2, 1, kernel_size=1, padding=0)

    def forward(self, x, mask, input_dist=None):
        arg_mask = torch.argmax(mask, 1).long()
        class_weight = F.embedding(arg_mask, self.weight).permute(0, 3, 1, 2)
        class_bias = F.embedding(arg_mask, self.bias).permute(0, 3, 1, 2)
        if self.add_dist:
            input_dist = F.interpolate(input_dist, size=x.size()[2:], mode="nearest")
            class_weight = class_weight * (1 + self.dist_conv_w(input_dist))
            class_bias = class_bias * (1 + self.dist_conv_b(input_dist))
        return x * class_weight + class_bias


class SPADELight(nn.Module):
    """tzt101/CLADE's CLADE norm: param-free norm, class affine, instance edges as an extra channel."""

    def __init__(self, norm, norm_nc, label_nc, no_instance=True, add_dist=False):
        super().__init__()
        self.no_instance = no_instance
        if norm == "instance":
            self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        else:
            self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.class_specified_affine = ClassAffine(label_nc, norm_nc, add_dist)
        if not no_instance:
            self.inst_conv = nn.Conv2d(1, 1, kernel_size=1, padding=0)

    def forward(self, x, segmap, input_dist=None):
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.size()[2:], mode="nearest")
        if not self.no_instance:
            inst_map = torch.unsqueeze(segmap[:, -1, :, :], 1)
            segmap = segmap[:, :-1, :, :]
        out = self.class_specified_affine(normalized, segmap, input_dist)
        if not self.no_instance:
            out = torch.cat((out, self.inst_conv(inst_map)), dim=1)
        return out


class SPADEResnetBlock(nn.Module):
    def __init__(self, fin, fout, config, parametrized=False):
        super().__init__()
        c = config
        self.clade = c.norm_mode == "clade"
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        add = 1 if (self.clade and c.use_instance_map) else 0  # CLADE's edge channel
        self.conv_0 = nn.Conv2d(fin + add, fmiddle, 3, padding=1)
        self.conv_1 = nn.Conv2d(fmiddle + add, fout, 3, padding=1)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin + add, fout, 1, bias=False)
        if c.use_spectral_norm_G:
            self.conv_0 = _spectral(self.conv_0, parametrized)
            self.conv_1 = _spectral(self.conv_1, parametrized)
            if self.learned_shortcut:
                self.conv_s = _spectral(self.conv_s, parametrized)
        if self.clade:
            def norm(channels):
                return SPADELight(c.param_free_norm_G, channels, c.label_nc + int(c.contain_dontcare_label),
                                  no_instance=not c.use_instance_map, add_dist=c.use_positional_encoding)
        else:
            def norm(channels):
                return SPADE(c.param_free_norm_G, channels, c.semantic_nc, kernel_size=c.spade_kernel_size,
                             nhidden=c.spade_hidden)
        self.norm_0 = norm(fin)
        self.norm_1 = norm(fmiddle)
        if self.learned_shortcut:
            self.norm_s = norm(fin)

    def forward(self, x, seg, dist=None):
        def norm(layer, h):
            return layer(h, seg, dist) if self.clade else layer(h, seg)

        x_s = self.conv_s(norm(self.norm_s, x)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(norm(self.norm_0, x), 0.2))
        dx = self.conv_1(F.leaky_relu(norm(self.norm_1, dx), 0.2))
        return x_s + dx


class SPADEGenerator(nn.Module):
    def __init__(self, config, parametrized=False):
        super().__init__()
        c = self.config = config
        nf = c.ngf
        n_up = {"normal": 5, "more": 6, "most": 7}[c.num_upsampling_layers]
        self.sw = c.crop_size // 2**n_up
        self.sh = round(self.sw / c.aspect_ratio)
        if c.use_vae:
            self.fc = nn.Linear(c.z_dim, 16 * nf * self.sw * self.sh)
        else:
            self.fc = nn.Conv2d(c.semantic_nc, 16 * nf, 3, padding=1)

        def block(fin, fout):
            return SPADEResnetBlock(fin, fout, c, parametrized)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, 1 * nf)
        final_nc = nf
        if c.num_upsampling_layers == "most":
            self.up_4 = block(nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, seg, z=None, dist=None):
        c = self.config
        if c.use_vae:
            x = self.fc(z).view(-1, 16 * c.ngf, self.sh, self.sw)
        else:
            x = self.fc(F.interpolate(seg, size=(self.sh, self.sw)))
        x = self.head_0(x, seg, dist)
        x = self.G_middle_0(self.up(x), seg, dist)
        if c.num_upsampling_layers in ("more", "most"):
            x = self.up(x)
        x = self.G_middle_1(x, seg, dist)
        for name in ("up_0", "up_1", "up_2", "up_3") + (("up_4",) if c.num_upsampling_layers == "most" else ()):
            x = getattr(self, name)(self.up(x), seg, dist)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


def _spectral_instance(conv, use_spectral_norm, parametrized=False):
    """Official ``get_nonspade_norm_layer(opt, 'spectralinstance')``: SN, bias removed, IN."""
    if use_spectral_norm:
        conv = _spectral(conv, parametrized)
    del conv.bias
    conv.register_parameter("bias", None)
    return nn.Sequential(conv, nn.InstanceNorm2d(conv.out_channels, affine=False))


class NLayerDiscriminator(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = config
        kw, padw = 4, 2
        nf = c.ndf
        input_nc = c.semantic_nc + 3
        sequence = [[nn.Conv2d(input_nc, nf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, False)]]
        for n in range(1, c.n_layers_D):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == c.n_layers_D - 1 else 2
            conv = nn.Conv2d(nf_prev, nf, kw, stride=stride, padding=padw)
            sequence += [[_spectral_instance(conv, c.use_spectral_norm_D), nn.LeakyReLU(0.2, False)]]
        sequence += [[nn.Conv2d(nf, 1, kw, stride=1, padding=padw)]]
        for n, layers in enumerate(sequence):
            self.add_module(f"model{n}", nn.Sequential(*layers))

    def forward(self, x):
        results = [x]
        for submodel in self.children():
            results.append(submodel(results[-1]))
        return results[1:]


class MultiscaleDiscriminator(nn.Module):
    def __init__(self, config):
        super().__init__()
        for i in range(config.num_D):
            self.add_module(f"discriminator_{i}", NLayerDiscriminator(config))

    def forward(self, x):
        result = []
        for d in self.children():
            result.append(d(x))
            x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=[1, 1], count_include_pad=False)
        return result


class ConvEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = self.config = config
        ndf = c.ngf  # the official encoder reads ngf
        sn = c.use_spectral_norm_E

        def layer(fin, fout):
            return _spectral_instance(nn.Conv2d(fin, fout, 3, stride=2, padding=1), sn)

        self.layer1 = layer(3, ndf)
        self.layer2 = layer(ndf, ndf * 2)
        self.layer3 = layer(ndf * 2, ndf * 4)
        self.layer4 = layer(ndf * 4, ndf * 8)
        self.layer5 = layer(ndf * 8, ndf * 8)
        if c.crop_size >= 256:
            self.layer6 = layer(ndf * 8, ndf * 8)
        self.so = s0 = 4
        self.fc_mu = nn.Linear(ndf * 8 * s0 * s0, 256)  # official: 256 outputs, hard-coded
        self.fc_var = nn.Linear(ndf * 8 * s0 * s0, 256)

    def forward(self, x):
        if x.size(2) != 256 or x.size(3) != 256:
            x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        names = ["layer1", "layer2", "layer3", "layer4", "layer5"]
        if self.config.crop_size >= 256:
            names.append("layer6")
        for name in names:
            x = F.leaky_relu(getattr(self, name)(x), 0.2)
        x = x.reshape(x.size(0), -1)
        return self.fc_mu(x), self.fc_var(x)


def warm_up(module, *inputs, steps=1):
    """Train-mode forwards: non-trivial batch-norm statistics and spectral-norm vectors.

    Batch norms use a cumulative average (``momentum=None``) while warming up,
    so the running statistics end as the batch statistics: eval-mode
    activations stay in a sensible range. Returns the module in eval mode.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.momentum = None
    module.train()
    with torch.no_grad():
        for _ in range(steps):
            module(*inputs)
    for m in norms:
        m.momentum = 0.1
    return module.eval()


def state_dict_numpy(module):
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------- test helpers


def to_nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def to_nhwc(t):
    return t.detach().cpu().numpy().transpose(0, 2, 3, 1)


def segmap_for(config, rng, batch=2):
    """Random one-hot labels (+ don't-care), then the instance-edge channel last, as official."""
    h, w = config.image_size
    depth = config.label_nc + int(config.contain_dontcare_label)
    ids = rng.integers(0, depth, size=(batch, h // 4, w // 4))
    seg = np.eye(depth, dtype=np.float32)[np.repeat(np.repeat(ids, 4, 1), 4, 2)]
    if config.use_instance_map:
        edges = (rng.random((batch, h, w, 1)) < 0.2).astype(np.float32)
        seg = np.concatenate([seg, edges], axis=-1)
    return seg


def reference_generator(config, rng, parametrized=False, seed=0):
    """A warmed-up PyTorch generator in eval mode, its segmap (NHWC) and latent (or None)."""
    torch.manual_seed(seed)
    g = SPADEGenerator(config, parametrized)
    with torch.no_grad():  # PyTorch's default init would saturate tanh; keep outputs informative
        g.conv_img.weight.mul_(0.1)
    # Warm up on other, more varied label maps than the test's: at a 1x1
    # latent ('most' at crop 128) two samples can share their first label,
    # and a near-zero batch variance would amplify float rounding 300-fold.
    warm_seg = segmap_for(config, rng, batch=4)
    warm_z = torch.randn(4, config.z_dim) if config.use_vae else None
    warm_up(g, to_nchw(warm_seg), warm_z)
    seg = segmap_for(config, rng)
    z = torch.randn(seg.shape[0], config.z_dim) if config.use_vae else None
    return g, seg, z
