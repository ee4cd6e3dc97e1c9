"""A small PyTorch re-implementation of ZPdesu/SEAN's netG (generator and Zencoder), for the importer tests.

Written from reading ZPdesu/SEAN (``models/networks/{generator,architecture,
normalization}.py``, commit 04c7536): the module tree, attribute names and
registration order are the official ones, so ``state_dict()`` has the
official key names, shapes and order:
  * ``SEANGenerator``: ``Zencoder`` (registered first), ``fc``, ``head_0``,
    ``G_middle_0/1``, ``up_0..up_3`` (``up_3`` without style, official
    ``use_rgb=False``), ``conv_img``;
  * ``SPADEResnetBlock``: ``conv_0``, ``conv_1``, [``conv_s``] (spectral norm
    with ``use_spectral_norm_G``), then ``ace_0``, ``ace_1``, [``ace_s``];
  * ``ACE``: ``Spade`` (a SPADE whose own param-free norm is never applied),
    the parameters ``blending_gamma``, ``blending_beta``, ``noise_var``,
    ``param_free_norm`` (batch norm whatever ``param_free_norm_G`` says: the
    official ACE hard-codes 'spadesyncbatch3x3'), ``fc_mu0..fc_mu18``
    (always 19, however many label channels), ``conv_gamma``, ``conv_beta``;
  * ``Zencoder``: ``model`` = pad, conv, IN, lrelu, 2 x (stride-2 conv, IN,
    lrelu), transposed conv, IN, lrelu, pad, conv, tanh; region means of the
    codes over the nearest-resized label map.
Differences, none of which changes a key or a number:
  * ``nn.BatchNorm2d(affine=False)`` stands in for ``SynchronizedBatchNorm2d``;
  * options come from a ``SPADEConfig``; the style length (official: 512)
    and the SPADE embedding width (official: 128) follow ``style_dim`` and
    ``spade_hidden`` so that tests can run smaller networks;
  * ACE's noise (official: always added, drawn on the GPU) is off unless
    ``use_noise``: with it off the network is deterministic, and our
    generator is compared with ``set_noise(model, False)``.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_reference as tr

# Official ACE.create_gamma_beta_fc_layers: fc_mu0 .. fc_mu18.
FC_LAYERS = 19


class Spade(tr.SPADE):
    """The official ``normalization.SPADE`` as ACE uses it: (gamma, beta) of a resized segmap."""

    def forward(self, segmap):
        actv = self.mlp_shared(segmap)
        return self.mlp_gamma(actv), self.mlp_beta(actv)


class ACE(nn.Module):
    def __init__(self, norm_nc, config, use_rgb=True, fc_layers=FC_LAYERS):
        super().__init__()
        c = config
        self.Spade = Spade(c.param_free_norm_G, norm_nc, c.semantic_nc, kernel_size=c.spade_kernel_size,
                           nhidden=c.spade_hidden)
        self.use_rgb = use_rgb
        self.use_noise = False
        self.style_length = c.style_dim
        self.blending_gamma = nn.Parameter(torch.zeros(1))
        self.blending_beta = nn.Parameter(torch.zeros(1))
        self.noise_var = nn.Parameter(torch.zeros(norm_nc))
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        if use_rgb:
            for j in range(fc_layers):
                self.add_module(f"fc_mu{j}", nn.Linear(self.style_length, self.style_length))
            self.conv_gamma = nn.Conv2d(self.style_length, norm_nc, 3, padding=1)
            self.conv_beta = nn.Conv2d(self.style_length, norm_nc, 3, padding=1)

    def forward(self, x, segmap, style_codes):
        if self.use_noise:
            # One N(0, 1) value per pixel, scaled per channel (official randn(B, W, H, 1), transposed).
            noise = torch.randn(x.shape[0], x.shape[3], x.shape[2], 1) * self.noise_var
            x = x + noise.transpose(1, 3)
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        gamma, beta = self.Spade(segmap)
        if self.use_rgb:
            b, _, h, w = normalized.shape
            style_map = torch.zeros(b, self.style_length, h, w)
            for i in range(b):
                for j in range(segmap.shape[1]):  # channel order: a later region overwrites an earlier one
                    region = segmap[i, j] != 0
                    if region.any():
                        style = F.relu(getattr(self, f"fc_mu{j}")(style_codes[i, j]))
                        style_map[i][:, region] = style[:, None]
            a_gamma = torch.sigmoid(self.blending_gamma)
            a_beta = torch.sigmoid(self.blending_beta)
            gamma = a_gamma * self.conv_gamma(style_map) + (1 - a_gamma) * gamma
            beta = a_beta * self.conv_beta(style_map) + (1 - a_beta) * beta
        return normalized * (1 + gamma) + beta


class SPADEResnetBlock(nn.Module):
    def __init__(self, fin, fout, config, use_rgb=True):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = nn.Conv2d(fin, fmiddle, 3, padding=1)
        self.conv_1 = nn.Conv2d(fmiddle, fout, 3, padding=1)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)
        if config.use_spectral_norm_G:
            self.conv_0 = tr._spectral(self.conv_0)
            self.conv_1 = tr._spectral(self.conv_1)
            if self.learned_shortcut:
                self.conv_s = tr._spectral(self.conv_s)
        self.ace_0 = ACE(fin, config, use_rgb)
        self.ace_1 = ACE(fmiddle, config, use_rgb)
        if self.learned_shortcut:
            self.ace_s = ACE(fin, config, use_rgb)

    def forward(self, x, seg, style_codes):
        x_s = self.conv_s(self.ace_s(x, seg, style_codes)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.ace_0(x, seg, style_codes), 0.2))
        dx = self.conv_1(F.leaky_relu(self.ace_1(dx, seg, style_codes), 0.2))
        return x_s + dx


class Zencoder(nn.Module):
    """Official ``Zencoder(3, style_dim)``: ngf 32, two downsamplings, one upsampling."""

    def __init__(self, style_dim, ngf=32):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(3, ngf, 3), nn.InstanceNorm2d(ngf), nn.LeakyReLU(0.2)]
        for cin in (ngf, 2 * ngf):
            layers += [nn.Conv2d(cin, 2 * cin, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * cin),
                       nn.LeakyReLU(0.2)]
        layers += [nn.ConvTranspose2d(4 * ngf, 8 * ngf, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(8 * ngf), nn.LeakyReLU(0.2)]
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(8 * ngf, style_dim, 3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, image, segmap):
        codes = self.model(image)
        segmap = F.interpolate(segmap, size=codes.shape[2:], mode="nearest")
        out = torch.zeros(codes.shape[0], segmap.shape[1], codes.shape[1])
        for i in range(codes.shape[0]):
            for j in range(segmap.shape[1]):
                region = segmap[i, j] != 0
                if region.any():  # absent regions keep zeros
                    out[i, j] = codes[i][:, region].mean(1)
        return out


class SEANGenerator(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = self.config = config
        nf = c.ngf
        n_up = {"normal": 5, "more": 6}[c.num_upsampling_layers]
        self.sw = c.crop_size // 2**n_up
        self.sh = round(self.sw / c.aspect_ratio)
        self.Zencoder = Zencoder(c.style_dim)
        self.fc = nn.Conv2d(c.semantic_nc, 16 * nf, 3, padding=1)
        self.head_0 = SPADEResnetBlock(16 * nf, 16 * nf, c)
        self.G_middle_0 = SPADEResnetBlock(16 * nf, 16 * nf, c)
        self.G_middle_1 = SPADEResnetBlock(16 * nf, 16 * nf, c)
        self.up_0 = SPADEResnetBlock(16 * nf, 8 * nf, c)
        self.up_1 = SPADEResnetBlock(8 * nf, 4 * nf, c)
        self.up_2 = SPADEResnetBlock(4 * nf, 2 * nf, c)
        self.up_3 = SPADEResnetBlock(2 * nf, 1 * nf, c, use_rgb=False)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def set_noise(self, enabled):
        for m in self.modules():
            if isinstance(m, ACE):
                m.use_noise = enabled

    def forward(self, seg, image):
        x = self.fc(F.interpolate(seg, size=(self.sh, self.sw)))
        style_codes = self.Zencoder(image, seg)
        x = self.head_0(x, seg, style_codes)
        x = self.G_middle_0(self.up(x), seg, style_codes)
        if self.config.num_upsampling_layers == "more":
            x = self.up(x)
        x = self.G_middle_1(x, seg, style_codes)
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = getattr(self, name)(self.up(x), seg, style_codes)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


def region_image(seg, rng):
    """Images whose regions differ (a random colour each, plus noise): their style codes differ."""
    colors = rng.uniform(-1, 1, (seg.shape[0], seg.shape[-1], 3))
    image = np.einsum("bhwl,blc->bhwc", seg, colors) + rng.normal(0, 0.1, (*seg.shape[:3], 3))
    return np.clip(image, -1, 1).astype(np.float32)


def reference_sean(config, rng, seed=0):
    """A warmed-up PyTorch SEAN netG in eval mode (noise off) with a style path that
    matters, its segmap and image (NHWC).

    PyTorch's default init, then: blending away from 0.5 (sigmoid of N(0, 1)),
    the style path scaled up (the codes x2, the fc_mu and style convs'
    weights x4: about a quarter of the output changes with the image),
    non-zero noise scales (off, but their import is checked), the output
    conv scaled down so that tanh does not saturate.
    """
    torch.manual_seed(seed)
    g = SEANGenerator(config)
    with torch.no_grad():
        g.conv_img.weight.mul_(0.1)
        g.Zencoder.model[14].weight.mul_(2.0)
        for name, p in g.named_parameters():
            if name.endswith(("blending_gamma", "blending_beta")):
                p.normal_(0, 1)
            elif name.endswith("noise_var"):
                p.normal_(0, 0.5)
            elif (".conv_gamma." in name or ".conv_beta." in name or ".fc_mu" in name) and "weight" in name:
                p.mul_(4.0)
    warm_seg = tr.segmap_for(config, rng, batch=4)
    tr.warm_up(g, tr.to_nchw(warm_seg), tr.to_nchw(region_image(warm_seg, rng)))
    seg = tr.segmap_for(config, rng)
    return g, seg, region_image(seg, rng)
