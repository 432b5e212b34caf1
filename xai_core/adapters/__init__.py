"""One adapter per framework over one protocol (base.py): predict, gradients, layers."""
