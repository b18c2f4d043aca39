"""llama-cpp-python's OpenAI-compatible server with its embeddings mean-pooled, one vector per text,
as llama.cpp's own ``llama-server --embeddings --pooling mean`` serves them (the Python server has
no pooling option, and for a model whose file names no pooling it answers one vector per token).

Run as ``python tests/embedding_server.py`` with the server's own arguments."""

import runpy

import llama_cpp

_load = llama_cpp.Llama.__init__


def _mean_pooled(self, *args, **kwargs):
    kwargs.setdefault("pooling_type", llama_cpp.LLAMA_POOLING_TYPE_MEAN)
    _load(self, *args, **kwargs)


llama_cpp.Llama.__init__ = _mean_pooled
runpy.run_module("llama_cpp.server", run_name="__main__")
