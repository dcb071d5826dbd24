"""The hot path: the usage topic read in whole batches (see ``streams.hot.loop``)."""
