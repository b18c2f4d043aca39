"""Reading the user's files and the bundled benchmark datasets, and the paper's protocol split."""

from .datasets import (Budget, Dataset, Split, bundled_names, describe_bundled, load_bundled, load_datasets, load_folder, parse_seed,
                       protocol_split)
from .io import Item, ItemFile, Preferences, check_labels, iter_items, read_items, read_labelset, read_preferences

__all__ = ["Budget", "Dataset", "Item", "ItemFile", "Preferences", "Split", "bundled_names", "check_labels", "describe_bundled", "iter_items", "load_bundled",
           "load_datasets", "load_folder", "parse_seed", "protocol_split", "read_items", "read_labelset", "read_preferences"]
