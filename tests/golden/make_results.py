"""Writes tests/golden/results.jsonl: the fixed results file behind the golden table renderings.

Two BAIR runs: 'paper-protocol' measured under the columns' protocols (fvd/fvd-star/r-fvd.videogpt_paper,
so ranked), and 'official-protocol' measured under fvd.official (so marked with a dagger and not ranked). The
values are invented for rendering only; the protocol hashes are the cards' current ones.
Run: python tests/golden/make_results.py && python tests/golden/make_results.py --render
"""

import json
import sys
from pathlib import Path

from vgbench import cards, leaderboard

HERE = Path(__file__).parent


def record(metric, protocol, value, std, run):
    card, tag, p = cards.resolve_protocol(metric, protocol)
    return {
        "metric": metric,
        "protocol": protocol,
        "protocol_hash": cards.protocol_hash(card.name, tag, p, card.card_version),
        "value": value,
        "std": std,
        "run": run,
        "dataset": "bair",
        "off_protocol": False,
    }


def main():
    recs = [
        record("fvd", "videogpt_paper", 101.25, 1.9, "paper-protocol"),
        record("fvd-star", "videogpt_paper", 95.5, 1.25, "paper-protocol"),
        record("r-fvd", "videogpt_paper", 13.75, None, "paper-protocol"),
        record("fvd", "official", 99.5, None, "official-protocol"),
    ]
    (HERE / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    if "--render" in sys.argv:
        for n in map(str, range(1, 8)):
            for fmt, ext in (("md", "md"), ("latex", "tex")):
                text = leaderboard.render_tables(n, fmt, recs)
                (HERE / f"table{n}.{ext}").write_text(text)


if __name__ == "__main__":
    main()
