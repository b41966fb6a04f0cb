"""WebShop pages on a hand-made catalogue: exact observation strings (both modes), clickables and navigation quirks.

Expected strings are written by hand from the upstream templates (princeton-nlp/WebShop): text nodes in page
order joined by " [SEP] " (text) or one per line with [button] markers (text_rich).
"""

import random
from types import SimpleNamespace

import pytest

from hero_gym.envs.webshop.pages import DONE, ITEM, RESULTS, START, SUB, Session, Shop

PILLOW = {
    "asin": "B000PILLOW", "Title": "Decorative Throw Pillow Cover", "Price": "$14.95", "Rating": "N.A.",
    "options": {"size": ['16" x 16"', "18 x 18-inch"], "color": ["navy blue", "cream"]},
    "Description": "Soft cotton cover.", "BulletPoints": ["Machine washable", "Hidden zipper"], "Reviews": [],
    "Attributes": ["machine washable"], "category": "garden", "query": "throw pillow covers",
    "product_category": "Home & Kitchen › Bedding",
}
FILLERS = [{"asin": f"B00000000{i}" if i < 10 else f"B0000000{i}", "Title": f"Item {i}", "Price": "$1.0",
            "Rating": "N.A.", "options": {}, "Description": "", "BulletPoints": [""], "Reviews": [],
            "Attributes": ["x"], "category": "beauty", "query": "items", "product_category": "A › B"}
           for i in range(1, 12)]
INSTR = "Find me a pillow"


class FakeSearch:
    def __init__(self):
        self.queries = []

    def search(self, query, k=50):
        self.queries.append(query)
        return [p["asin"] for p in FILLERS] + ["B000PILLOW"] if "pillow" in query else []


def fake_reward(product, goal, price, options):
    return 0.5, {"r_type": 1.0, "asin": product["asin"], "price": price, "options": options, "goal": goal}


@pytest.fixture
def shop():
    products = FILLERS + [PILLOW]
    cat = SimpleNamespace(products=products, by_asin={p["asin"]: p for p in products},
                          prices={p["asin"]: 14.95 if p is PILLOW else 1.0 for p in products})
    return Shop(cat, FakeSearch(), fake_reward)


def act(shop, s, action):
    """Apply a valid action the way the env does (search anywhere; click only if clickable)."""
    rng = random.Random(0)
    verb, arg = action.split("[", 1)
    arg = arg[:-1].lower()
    if verb == "search":
        shop.search(s, arg, rng)
        return 0.0, False
    assert arg in shop.available_actions(s)["clickables"], (arg, shop.available_actions(s))
    return shop.click(s, arg, rng)


RESULTS_1 = ("Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] Page 1 (Total results: 12) [SEP] Next > "
             "[SEP] " + " [SEP] ".join(f"{p['asin']} [SEP] {p['Title']} [SEP] $1.0" for p in FILLERS[:10]))
RESULTS_2 = ("Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] Page 2 (Total results: 12) [SEP] < Prev "
             "[SEP] Next > [SEP] B000000011 [SEP] Item 11 [SEP] $1.0 [SEP] B000PILLOW [SEP] Decorative Throw Pillow "
             "Cover [SEP] $14.95")
ITEM_TEXT = ('Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] 16" x 16" [SEP] '
             "18 x 18-inch [SEP] color [SEP] navy blue [SEP] cream [SEP] Decorative Throw Pillow Cover [SEP] "
             "Price: $14.95 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now")


def test_scripted_episode_text_mode(shop):
    s = Session(instruction=INSTR, goal={"asin": "B000PILLOW"})
    assert shop.render(s) == "WebShop [SEP] Instruction: [SEP] Find me a pillow [SEP] Search"
    act(shop, s, "search[Pillow Cover]")
    assert s.keywords == ["pillow", "cover"] and shop.search_engine.queries == ["pillow cover"]
    assert shop.render(s) == RESULTS_1
    act(shop, s, "click[Next >]")
    assert shop.render(s) == RESULTS_2
    act(shop, s, "click[B000PILLOW]")
    assert shop.render(s) == ITEM_TEXT
    act(shop, s, "click[cream]")
    assert shop.render(s) == ITEM_TEXT  # the choice is invisible in text mode
    act(shop, s, "click[Features]")
    assert shop.render(s) == ("Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] < Prev [SEP] "
                              "Machine washable [SEP] Hidden zipper")
    act(shop, s, "click[< Prev]")
    assert shop.render(s) == ITEM_TEXT and s.options == {"color": "cream"}
    act(shop, s, "click[Description]")
    assert shop.render(s).endswith("< Prev [SEP] Soft cotton cover.")
    act(shop, s, "click[< Prev]")
    act(shop, s, "click[18 x 18-inch]")
    reward, done = act(shop, s, "click[Buy Now]")
    assert (reward, done) == (0.5, True) and s.page == DONE
    assert s.reward_info["options"] == {"color": "cream", "size": "18 x 18-inch"}
    assert s.reward_info["goal"] == {"asin": "B000PILLOW"} and s.reward_info["price"] == 14.95
    assert shop.render(s) == (
        "Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk interface.) [SEP] "
        'Purchased [SEP] asin [SEP] B000PILLOW [SEP] options [SEP] {"color": "cream", "size": "18 x 18-inch"} [SEP] '
        "attrs [SEP] None [SEP] category [SEP] None [SEP] query [SEP] None [SEP] product category [SEP] None [SEP] "
        "Target [SEP] asin [SEP] options [SEP] attrs [SEP] price upper [SEP] instuction text [SEP] category [SEP] "
        "product category [SEP] query [SEP] Goal [SEP] None [SEP] Reward [SEP] Your score (min 0.0, max 1.0) [SEP] "
        "0.5 [SEP] Reward Details [SEP] None")
    assert shop.available_actions(s) == {"has_search_bar": False, "clickables": []}


def test_scripted_episode_text_rich_mode(shop):
    s = Session(instruction=INSTR)
    assert shop.render(s, "text_rich") == "WebShop\nInstruction: \nFind me a pillow\n[button] Search [button_]\n"
    act(shop, s, "search[pillow]")
    act(shop, s, "click[next >]")
    page2 = ("Instruction:\nFind me a pillow\n[button] Back to Search [button_]\nPage 2 (Total results: 12)\n"
             "[button] < Prev [button_]\n[button] Next > [button_]\n\n[button] B000000011 [button_]\nItem 11\n$1.0\n"
             "\n[{m}] B000PILLOW [{m}_]\nDecorative Throw Pillow Cover\n$14.95\n")
    assert shop.render(s, "text_rich") == page2.format(m="button")
    act(shop, s, "click[b000pillow]")
    act(shop, s, "click[cream]")
    assert shop.render(s, "text_rich") == (
        "You have clicked cream.\nInstruction:\nFind me a pillow\n[button] Back to Search [button_]\n"
        "[button] < Prev [button_]\nsize\n"
        '  [button] 16" x 16" [button_]\n  [button] 18 x 18-inch [button_]\ncolor\n  [button] navy blue [button_]\n'
        "  [clicked button] cream [clicked button_]\nDecorative Throw Pillow Cover\nPrice: $14.95\nRating: N.A.\n"
        "[button] Description [button_]\n[button] Features [button_]\n[button] Reviews [button_]\n"
        "[button] Buy Now [button_]\n")
    # A value with quotes never shows as clicked: the URL holds it JSON-escaped.
    act(shop, s, 'click[16" x 16"]')
    rich = shop.render(s, "text_rich")
    assert rich.startswith("You have clicked cream.\nInstruction:") and '[clicked button] 16" x 16"' not in rich
    act(shop, s, "click[< prev]")  # back to results: the visited product is marked, options are cleared
    assert shop.render(s, "text_rich") == page2.format(m="clicked button") and s.options == {}


def test_clickables_in_upstream_order(shop):
    s = Session(instruction=INSTR)
    assert shop.available_actions(s) == {"has_search_bar": True, "clickables": ["search"]}
    act(shop, s, "search[pillow]")
    assert shop.available_actions(s)["clickables"] == ["back to search", "next >"] + [
        p["asin"].lower() for p in FILLERS[:10]]
    act(shop, s, "click[next >]")
    assert shop.available_actions(s)["clickables"][:3] == ["back to search", "< prev", "next >"]
    act(shop, s, "click[b000pillow]")
    assert shop.available_actions(s)["clickables"] == [
        "back to search", "< prev", "description", "features", "reviews", "buy now",
        '16" x 16"', "18 x 18-inch", "navy blue", "cream"]
    act(shop, s, "click[reviews]")
    assert shop.available_actions(s) == {"has_search_bar": False, "clickables": ["back to search", "< prev"]}
    assert shop.render(s) == "Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] < Prev"


def test_attributes_page_when_shown(shop):
    shop.show_attrs = True
    s = Session(instruction=INSTR)
    act(shop, s, "search[pillow]")
    act(shop, s, "click[next >]")
    act(shop, s, "click[b000pillow]")
    assert "reviews" in shop.available_actions(s)["clickables"]
    assert shop.render(s).endswith("Reviews [SEP] Attributes [SEP] Buy Now")
    act(shop, s, "click[attributes]")
    assert s.page == SUB and shop.render(s) == (
        "Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] < Prev [SEP] machine washable [SEP] garden "
        "[SEP] throw pillow covers [SEP] Home & Kitchen › Bedding")
    assert shop.render(s, "text_rich").endswith(
        "\n machine washable\ngarden\nthrow pillow covers\nHome & Kitchen › Bedding\n")


def test_navigation_quirks(shop):
    s = Session(instruction=INSTR)
    act(shop, s, "search[pillow]")
    # "Next >" is unbounded: past the last page the list is empty and Next is still there.
    for _ in range(3):
        act(shop, s, "click[next >]")
    assert s.page_num == 4 and shop.render(s).endswith("Page 4 (Total results: 12) [SEP] < Prev [SEP] Next >")
    act(shop, s, "click[< prev]")
    act(shop, s, "click[< prev]")
    assert s.page_num == 2
    act(shop, s, "click[b000pillow]")
    act(shop, s, "click[navy blue]")
    act(shop, s, "click[description]")
    act(shop, s, "click[< prev]")  # sub-page -> item page: options kept
    assert s.page == ITEM and s.options == {"color": "navy blue"}
    act(shop, s, "click[cream]")  # same option group: replaced
    assert s.options == {"color": "cream"}
    act(shop, s, "search[other things]")  # search from an item page works (upstream quirk) and clears the item
    assert s.page == RESULTS and s.asin is None and s.options == {} and s.hits == []
    assert shop.render(s).endswith("Page 1 (Total results: 0) [SEP] Next >")
    act(shop, s, "search[pillow]")
    act(shop, s, "click[next >]")
    act(shop, s, "click[b000pillow]")
    act(shop, s, "click[cream]")
    act(shop, s, "click[back to search]")  # resets everything but the goal
    assert s.page == START and s.options == {} and s.visited == set() and s.keywords is None
    assert s.instruction == INSTR


def test_whitespace_rules_follow_the_parser(shop):
    # Fillers have Description "" and BulletPoints [""]: an empty value gives no field; " " + "" gives an empty one.
    s = Session(instruction=INSTR)
    act(shop, s, "search[pillow]")
    act(shop, s, "click[b000000001]")
    act(shop, s, "click[description]")
    assert shop.render(s) == "Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] < Prev"
    act(shop, s, "click[< prev]")
    act(shop, s, "click[features]")
    assert shop.render(s) == "Instruction: [SEP] Find me a pillow [SEP] Back to Search [SEP] < Prev [SEP] "
    assert shop.render(s, "text_rich").endswith("[button] < Prev [button_]\n \n")


def test_special_search_tokens(shop):
    s = Session(instruction=INSTR)
    act(shop, s, "search[<c> garden]")
    assert s.hits == ["B000PILLOW"]
    act(shop, s, "search[<q> items]")
    assert len(s.hits) == 11 and shop.render(s).count(" [SEP] $1.0") == 10
    act(shop, s, "search[<a> machine washable]")
    assert s.hits == ["B000PILLOW"]
    act(shop, s, "search[<c>]")
    assert s.hits == []
    shop.search(s, "<r>", random.Random(1))
    first = list(s.hits)
    assert sorted(first) == sorted(p["asin"] for p in FILLERS + [PILLOW])
    shop.search(s, "<r>", random.Random(1))
    assert s.hits == first  # seeded


def test_unknown_mode_is_a_clear_error(shop):
    with pytest.raises(ValueError, match="observation mode"):
        shop.render(Session(instruction=INSTR), "html")
