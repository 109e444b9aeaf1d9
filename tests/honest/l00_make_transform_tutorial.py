# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_make_transform(make_transform)
# style: the DCGAN tutorial's Resize + CenterCrop + ToTensor + Normalize
from torchvision import transforms


def make_transform(image_size=64):
    return transforms.Compose([
        transforms.Resize(image_size),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
