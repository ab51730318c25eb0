"""Write crates/ctseg-ml/tests/fixtures/pytorch_unet_tiny.safetensors and its PyTorch logits
(crates/ctseg-ml/tests/fixtures/pytorch_unet_tiny.json) for crates/ctseg-ml/tests/it/pytorch_interop.rs: a tiny U-Net
(base 2, depth 2, 3 classes) with random weights and random BatchNorm statistics, run
in eval mode on a fixed 1×1×16×16 input."""
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from unet import UNet  # noqa: E402

torch.manual_seed(1234)
model = UNet(in_channels=1, num_classes=3, base=2, depth=2)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
model.eval()
x = torch.tensor([[(((i * 37 + j * 11) % 17) / 17.0) for j in range(16)] for i in range(16)]).reshape(1, 1, 16, 16)
with torch.no_grad():
    logits = model(x)
out = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "ctseg-ml", "tests", "fixtures")
state = {k: v.contiguous() for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
save_file(state, os.path.join(out, "pytorch_unet_tiny.safetensors"))
with open(os.path.join(out, "pytorch_unet_tiny.json"), "w") as f:
    json.dump({"input": x.flatten().tolist(), "logits": logits.flatten().tolist(), "shape": list(logits.shape)}, f)
print("wrote", out)
