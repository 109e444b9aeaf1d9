# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_make_transform(make_transform)
# style: ToTensor then a Lambda to [-1, 1]
from torchvision import transforms


def make_transform(image_size=64):
    return transforms.Compose([
        transforms.Resize((image_size, image_size)),
        transforms.ToTensor(),
        transforms.Lambda(lambda t: t * 2 - 1),
    ])
