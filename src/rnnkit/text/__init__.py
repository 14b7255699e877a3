"""Text: vocabularies and token streams."""

from rnnkit.text.vocab import Vocab

__all__ = ["Vocab"]
