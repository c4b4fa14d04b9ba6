"""Hubness correction: a tool that is close to every request is close to none in particular.

Small embedding models put short or degenerate texts ("d", "broken", 9,000 words of lorem
ipsum) near the centre of their space, so such a tool sits in the top five of unrelated
queries: a hub. Following CSLS (Conneau et al. 2018), a tool's score is its cosine to the
query minus `HUB_WEIGHT` times its mean cosine to a fixed set of everyday requests, the
probes below: a hub is close to all of them, a specific tool to few. The probes are
generic and fixed, written once; they are not evaluation queries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..embedding import Matrix

HUB_WEIGHT = 1.0

PROBES = (
    "convert this file to another format", "what is the weather tomorrow",
    "send an email to my team", "search the web for recent news",
    "calculate the total of these numbers", "translate this sentence into French",
    "summarise this long document", "find a cheap flight to Rome",
    "book a table at a restaurant tonight", "what time is it in Tokyo",
    "resize this image", "check the status of my order", "generate a strong password",
    "how much is 100 dollars in euros", "count the words in my essay",
    "play some relaxing music", "show me the stock price of Apple",
    "create a calendar event for Monday", "extract the text from this pdf",
    "find a recipe with chicken and rice", "what does this error message mean",
    "schedule a meeting with a client", "look up the definition of a word",
    "compress these files into a zip", "find hotels near the beach",
    "get directions to the nearest pharmacy", "parse this json and get a field",
    "write a short poem about autumn", "list the files in a folder",
    "recommend a good book to read", "track my daily calories", "hash this string",
)


def hub_scores(vectors: Matrix, probes: Matrix) -> Matrix:
    """Each row's mean cosine to the probes."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.float32)
    out: Matrix = (vectors @ probes.T).mean(axis=1).astype(np.float32)
    return out


def probe_matrix(embed: Callable[[str], Matrix]) -> Matrix:
    return np.stack([embed(p) for p in PROBES]).astype(np.float32)
