"""Reading the user's files and the bundled benchmark datasets, and the paper's protocol split."""

from .datasets import Budget, Dataset, Split, bundled_names, load_bundled, load_folder, protocol_split
from .io import Item, check_labels, read_items, read_labelset

__all__ = ["Budget", "Dataset", "Item", "Split", "bundled_names", "check_labels", "load_bundled",
           "load_folder", "protocol_split", "read_items", "read_labelset"]
