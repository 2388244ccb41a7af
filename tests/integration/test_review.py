"""The review app over real predictions: decisions reach the feedback topic exactly once,
bad requests get a clear 4xx and change nothing, and a restarted app rebuilds its queue from
the topics alone."""
from __future__ import annotations

import httpx
import pytest

from tests.integration.review_stack import feedback_records, review_app, run_pipeline

pytestmark = pytest.mark.slow
ALICE, BOB = ("alice", "alice-pw"), ("bob", "bob-pw")


@pytest.fixture(scope="module")
def reviewed(stack_settings, tmp_path_factory):
    return run_pipeline(stack_settings, tmp_path_factory.mktemp("review"))


def _client(url, auth=ALICE) -> httpx.Client:
    return httpx.Client(base_url=url, auth=auth, timeout=30)


def test_decisions_are_written_once_and_bad_requests_change_nothing(reviewed):
    s = reviewed.settings
    review_ids = [d for d, p in reviewed.predictions.items() if p["routing"] == "review"]
    docs = [d for d in review_ids if reviewed.predictions[d]["kind"] == "document"]
    assert len(docs) == 2  # document types are never routed auto (issue 10: no threshold is safe)
    doc = next(d for d in review_ids if reviewed.predictions[d]["kind"] == "text")  # decided here
    with review_app(s) as url, _client(url) as c:
        queue = c.get("/api/queue").json()
        assert {i["doc_id"] for i in queue["items"]} == set(review_ids)
        version = next(i["version"] for i in queue["items"] if i["doc_id"] == doc)
        assert httpx.get(f"{url}/api/queue").status_code == 401
        assert httpx.get(f"{url}/api/queue", auth=("alice", "bob-pw")).status_code == 401
        assert c.get(f"/items/{docs[0]}/pages/1.png").content[:8] == b"\x89PNG\r\n\x1a\n"
        assert c.get(f"/items/{docs[0]}/pages/7.png").status_code == 404

        bad = [  # (doc id, form, status, words of the error)
            ("no-such-doc", {"action": "accept", "version": version}, 404, "no prediction routed to review"),
            (doc, {"action": "accept", "version": "9:999"}, 409, "stale version"),
            (doc, {"action": "correct", "version": version, "field.swift_code": "DE00"}, 422, "unknown field 'swift_code'"),
            (doc, {"action": "correct", "version": version, "field.vendor": "x" * 500}, 422, "500 characters"),
            (doc, {"action": "correct", "version": version, "label": "passport"}, 422, "unknown label 'passport'"),
            (doc, {"action": "shred", "version": version}, 422, "unknown action"),
        ]
        for doc_id, form, status, words in bad:
            r = c.post(f"/items/{doc_id}/decision", data=form)
            assert (r.status_code, words in r.json()["error"]) == (status, True), (form, r.text)
        r = c.post(f"/items/{doc}/decision", data={"action": "correct", "version": version,
                                                    "comment": "y" * 70_000})
        assert r.status_code == 413
        assert feedback_records(s) == []

        first = c.post(f"/items/{doc}/decision", data={"action": "accept", "version": version})
        again = c.post(f"/items/{doc}/decision", data={"action": "accept", "version": version})
        assert (first.status_code, first.json()["written"]) == (201, True)
        assert (again.status_code, again.json()["written"]) == (200, False)
        with _client(url, BOB) as bob:
            other = bob.post(f"/items/{doc}/decision", data={"action": "correct", "version": version,
                                                             "label": "card_arrival" if reviewed.predictions[doc]["label"]
                                                             != "card_arrival" else "card_linking"})
        assert other.status_code == 409 and "decided already by alice" in other.json()["error"]
        assert doc not in {i["doc_id"] for i in c.get("/api/queue").json()["items"]}
        metrics = c.get("/metrics").text
        assert 'conveyor_review_decisions_total{action="accept"' in metrics and "conveyor_review_rate" in metrics

    records = [r for r in feedback_records(s) if r["doc_id"] not in docs]  # the browser test decides the documents
    assert [(r["doc_id"], r["action"], r["reviewer"]) for r in records] == [(doc, "accept", "alice")]
    p = reviewed.predictions[doc]
    assert (records[0]["model_name"], records[0]["model_sha256"], records[0]["trace_id"]) == (
        p["model_name"], p["model_sha256"], p["trace_id"])

    with review_app(s) as url, _client(url) as c:  # a restart: the queue comes back from the topics
        waiting = {i["doc_id"] for i in c.get("/api/queue").json()["items"]}
        assert doc not in waiting and set(docs) <= waiting
        resent = c.post(f"/items/{doc}/decision", data={"action": "accept", "version": version})
        assert (resent.status_code, resent.json()["written"]) == (200, False)
    assert len([r for r in feedback_records(s) if r["doc_id"] == doc]) == 1


def _chromium():
    """Headless Debian Chromium driven by its chromedriver (no download at run time)."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("Debian chromium and chromium-driver are not installed")
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.implicitly_wait(10)  # a click returns before the next page is loaded: lookups wait for it
    return browser


def _notice(browser) -> str:
    """The queue's 'decision recorded' line, once the browser is back on the queue (the click
    returns before the redirect is followed); the page's text when it never comes."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, 30).until(
            expected_conditions.presence_of_element_located((By.ID, "decided"))).text
    except TimeoutException:
        return browser.find_element(By.TAG_NAME, "body").text


def _open(browser, element) -> None:
    """Click a link or button that loads a new page and wait until the old page is gone, so that
    the next lookup cannot find (and then lose) an element of the page being left."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(old))


def test_a_reviewer_corrects_one_document_and_accepts_another_in_a_browser(reviewed, tmp_path):
    import base64
    import os
    import shutil

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    s, names = reviewed.settings, reviewed.names
    receipt = next(d for d, n in names.items() if n.endswith("contoso-receipt.png"))
    invoice = next(d for d, n in names.items() if n.endswith("Invoice_1.pdf"))
    new_label = "invoice" if reviewed.predictions[receipt]["label"] != "invoice" else "other"
    browser = _chromium()
    try:
        with review_app(s) as url:
            token = base64.b64encode(b"alice:alice-pw").decode()
            browser.execute_cdp_cmd("Network.enable", {})
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
            browser.get(url + "/")
            _open(browser, browser.find_element(By.CSS_SELECTOR, "form[method=get] button"))  # the filters, left blank
            rows = {r.get_attribute("data-doc-id") for r in browser.find_elements(By.CSS_SELECTOR, "tr.item")}
            assert {receipt, invoice} <= rows

            _open(browser, browser.find_element(By.CSS_SELECTOR, f"tr[data-doc-id='{receipt}'] a"))
            image = browser.find_element(By.CSS_SELECTOR, "#page-1 img")
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
            boxes = {b.get_attribute("data-field") for b in browser.find_elements(By.CSS_SELECTOR, "#page-1 .box")}
            assert boxes, "the OCR'd receipt shows a box for each located field"
            Select(browser.find_element(By.ID, "label")).select_by_value(new_label)
            total = browser.find_element(By.ID, "field.total_amount")
            total.clear()
            total.send_keys("99.99")
            shot = tmp_path / "review.png"
            browser.save_screenshot(str(shot))
            if os.environ.get("CONVEYOR_REVIEW_SCREENSHOT"):  # the docs' picture: docs/assets/review.png
                shutil.copy(shot, os.environ["CONVEYOR_REVIEW_SCREENSHOT"])
            browser.find_element(By.ID, "correct").click()
            assert receipt in _notice(browser)

            _open(browser, browser.find_element(By.CSS_SELECTOR, f"tr[data-doc-id='{invoice}'] a"))
            browser.find_element(By.ID, "accept").click()
            assert invoice in _notice(browser)
            rows = {r.get_attribute("data-doc-id") for r in browser.find_elements(By.CSS_SELECTOR, "tr.item")}
            assert not {receipt, invoice} & rows
    finally:
        browser.quit()
    assert shot.stat().st_size > 10_000
    decided = {r["doc_id"]: r for r in feedback_records(s) if r["doc_id"] in (receipt, invoice)}
    assert len([r for r in feedback_records(s) if r["doc_id"] in (receipt, invoice)]) == 2
    assert (decided[receipt]["action"], decided[receipt]["label"], decided[receipt]["corrected_fields"]) == (
        "correct", new_label, {"total_amount": "99.99"})
    assert (decided[invoice]["action"], decided[invoice]["label"], decided[invoice]["corrected_fields"]) == (
        "accept", reviewed.predictions[invoice]["label"], {})
