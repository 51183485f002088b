"""Issue 18 item 3: how far into an answer the default reward sees. Every term of
``default_reward()`` (and of ``default_reward(whole_answer=False)``, the earlier one) on growing
prefixes of one complete, correct answer to the demo question: a term that stops changing
stops steering the search past that length.

    python benchmarks/reward_horizon.py
"""

from __future__ import annotations

from langchain_darwin.rewards import default_reward
from langchain_darwin.rewards.weighted import WeightedReward

CONVERSATION = [{"role": "user", "content": "How do I boil an egg?"}]
ANSWER = (
    "Place the eggs in a single layer at the bottom of a saucepan and cover them with cold "
    "water by about an inch. Set the pan over high heat and bring the water to a full rolling "
    "boil. As soon as it boils, turn off the heat, cover the pan with a lid and let the eggs "
    "sit in the hot water. For soft yolks wait about six minutes; for firm but creamy yolks "
    "wait nine minutes; for fully hard-boiled eggs wait twelve minutes. Meanwhile fill a large "
    "bowl with ice and cold water. When the time is up, move the eggs with a slotted spoon into"
    " the ice bath and leave them there for at least five minutes, which stops the cooking and "
    "makes the shells easier to remove. To peel, tap each egg gently on the counter, roll it to"
    " crack the shell all over, and start peeling from the wide end where the air pocket is. "
    "Peeling under running water helps. Very fresh eggs are harder to peel, so eggs that are a "
    "week or two old work best. Boiled eggs keep in the refrigerator for up to a week in their "
    "shells. If you live at high altitude, water boils at a lower temperature, so add a minute "
    "or two to each of the times above."
)
WORDS = (15, 30, 50, 75, 100, 150)


def main() -> None:
    words = ANSWER.split()
    cuts = [n for n in WORDS if n < len(words)] + [len(words)]
    prefixes = [" ".join(words[:n]) for n in cuts]
    for label, whole in (("whole answer (the default)", True), ("first 64 tokens", False)):
        reward = WeightedReward.of(default_reward(whole_answer=whole))
        print(f"\n{label}:\n")
        print("| term (weight) | " + " | ".join(f"{n} words" for n in cuts) + " |")
        print("|---" * (len(cuts) + 1) + "|")
        for weight, term in reward.terms:
            cells = " | ".join(f"{v:.3f}" for v in term.score(CONVERSATION, prefixes))
            print(f"| {term!r} ({weight:g}) | {cells} |")
        total = " | ".join(f"{v:.3f}" for v in reward.score(CONVERSATION, prefixes))
        print(f"| **total** | {total} |")


if __name__ == "__main__":
    main()
