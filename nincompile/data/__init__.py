"""Data for training, evaluation and prediction.

The pipeline, in the order it runs:

* ``sources``: find and decode images (class folders, CIFAR-10 batches, MNIST idx
  files, Keras's loaders, synthetic images) into uint8 arrays, with a decode cache;
* ``split``: the seeded, stratified validation split;
* ``pipeline``: on-device preprocessing (resize, normalise) and augmentation as
  Keras layers, built from the spec's ``data:`` section.
"""
