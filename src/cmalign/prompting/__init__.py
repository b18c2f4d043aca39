"""What is asked: the prompt templates, the paper's five strategies as annotators over a chat
backend, the retrieval of labelled examples they show, and the parser of replies."""

from .prompts import Prompts
from .retrieval import ExampleRetriever
from .strategies import STRATEGIES, ChatAnnotator, Decoding, parse_answer

__all__ = ["STRATEGIES", "ChatAnnotator", "Decoding", "ExampleRetriever", "Prompts", "parse_answer"]
