"""pytorch-fid's own InceptionV3 features, as the reference for spade_tf's FID Inception.

Run as a script (``python fid_torch_reference.py OUT_DIR``), in a process of
its own: importing torchvision after TensorFlow can crash (torchvision pulls
in torch._dynamo, which loads triton's LLVM next to TensorFlow's), and
pytest has imported TensorFlow long before any test runs.

Reads ``OUT_DIR/images.npz`` (float arrays [B, H, W, 3] in [0, 255]);
writes ``OUT_DIR/fid_inception.pth`` (the random, seeded state dict it used)
and ``OUT_DIR/features.npz`` (the [B, 2048] features of each array).
"""

import os
import sys

import numpy as np
import torch
from pytorch_fid import inception as pytorch_fid_inception


def random_fid_state_dict(seed: int = 0) -> dict:
    """A state dict of fid_inception_v3's structure with seeded random values.

    Conv weights He-normal; BatchNorm gamma in [0.5, 1.5], beta ~ N(0, 0.1),
    running_mean ~ N(0, 0.2) (nonzero), running_var in [0.5, 2].
    """
    # The same structure fid_inception_v3() builds before loading the .pth
    # (its Mixed blocks are torchvision's classes with the same parameters).
    net = pytorch_fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(0.5 + torch.rand(c, generator=gen))
                module.bias.copy_(0.1 * torch.randn(c, generator=gen))
                module.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                module.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(0.01 * torch.randn(module.weight.shape, generator=gen))
    return {k: v.clone() for k, v in net.state_dict().items()}


def main(out_dir: str):
    torch.set_num_threads(os.cpu_count() or 1)
    state = random_fid_state_dict()
    calls = []

    def fake_download(url, *args, **kwargs):  # never downloads
        calls.append(url)
        return state

    # fid_inception_v3() looks the name up in its module: patching it there is enough.
    pytorch_fid_inception.load_state_dict_from_url = fake_download
    net = pytorch_fid_inception.InceptionV3(
        [3], resize_input=True, normalize_input=True, use_fid_inception=True
    ).eval()  # load_state_dict inside is strict: the keys and shapes are fid_inception_v3's
    assert calls == [pytorch_fid_inception.FID_WEIGHTS_URL], calls

    images = np.load(os.path.join(out_dir, "images.npz"))
    features = {}
    with torch.no_grad():
        for key in images.files:
            x = torch.from_numpy(np.ascontiguousarray(images[key].transpose(0, 3, 1, 2) / 255.0, np.float32))
            (pool,) = net(x)  # pytorch-fid takes NCHW in [0, 1]
            features[key] = pool[:, :, 0, 0].numpy()
    torch.save(state, os.path.join(out_dir, "fid_inception.pth"))
    np.savez(os.path.join(out_dir, "features.npz"), **features)


if __name__ == "__main__":
    main(sys.argv[1])
