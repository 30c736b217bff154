"""One module per form of data: ``folder`` (class sub-folders of image files),
``cifar`` (the ``cifar-10-batches-py`` folder and the ``.tar.gz`` archive), ``idx``
(MNIST / Fashion-MNIST), ``keras_datasets`` (Keras's loaders) and ``synthetic``.
:data:`nincompile.data.sources.FORMATS` is the one table of the forms ``--data PATH``
takes, which ``detect`` and ``read_source`` go through."""
