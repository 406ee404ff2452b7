"""One module per op: Triton kernels, launchers and the torch.library registration (fake impl + autograd)."""
