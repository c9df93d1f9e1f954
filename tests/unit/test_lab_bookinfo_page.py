"""productpage's reviews markup, as Istio's ``templates/productpage.html`` renders it."""

from __future__ import annotations

from meshlab.mesh.bookinfo import reviews_html

STAR = 'id="glyphicon glyphicon-star"'
EMPTY = 'fill="none" viewBox="0 0 24 24"'


def body(rating1: dict | None, rating2: dict | None) -> dict:
    reviews = [{"reviewer": "Reviewer1", "text": "A"}, {"reviewer": "Reviewer2", "text": "B"}]
    for r, rating in zip(reviews, (rating1, rating2), strict=True):
        if rating is not None:
            r["rating"] = rating
    return {"id": "0", "podname": "reviews-v2-abc", "clustername": "null", "reviews": reviews}


def test_v1_has_no_stars():
    page = reviews_html(body(None, None))
    assert page.count(STAR) == 0 and page.count(EMPTY) == 0
    assert "Reviewer1" in page and '<p>"A"</p>' in page and "Reviews served by: reviews-v2-abc" in page


def test_v2_black_and_v3_red_stars_with_empty_ones_up_to_five():
    black = reviews_html(body({"stars": 5, "color": "black"}, {"stars": 4, "color": "black"}))
    assert black.count(STAR) == 9 and black.count(EMPTY) == 1 and black.count("text-black-500") == 2
    red = reviews_html(body({"stars": 5, "color": "red"}, {"stars": 4, "color": "red"}))
    assert red.count(STAR) == 9 and red.count("text-red-500") == 2


def test_ratings_unavailable_and_reviews_unavailable():
    page = reviews_html(body({"error": "Ratings service is currently unavailable"}, None))
    assert '<p class="text-red-500">Ratings service is currently unavailable</p>' in page
    assert reviews_html(None) == '<p class="text-2xl text-red-500">Error fetching product reviews</p>'
