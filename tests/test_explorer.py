"""The policy explorer in a real browser: headless Chromium (Debian's, via
its ChromeDriver) loads the page `make explorer` serves, the engine runs
as wasm-bindgen wasm, and a user pastes, clicks and reads. Also: the
filter's dependency tree holds no wasm-bindgen and no `js` feature."""

import functools
import http.server
import json
import subprocess
import threading

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from harness import ROOT

EXPLORER = ROOT / "build" / "explorer"


@pytest.fixture(scope="module")
def page():
    if not (EXPLORER / "modelgate_explorer_bg.wasm").exists():
        pytest.fail("build/explorer is missing: run `make explorer-build` (or `make test`)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(EXPLORER))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        yield driver
    finally:
        driver.quit()
        server.shutdown()


def fill(driver, element_id, text):
    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(text)


def explain(driver, **fields):
    for element_id, text in fields.items():
        fill(driver, element_id.replace("_", "-"), text)
    driver.find_element(By.ID, "explain").click()
    return driver.find_element(By.ID, "decision").text, driver.find_element(By.ID, "reason").text, \
        driver.find_element(By.ID, "rule").text


def test_the_demo_policy_loads_and_decides(page):
    assert page.find_element(By.ID, "config-status").text.startswith("ok: mode enforce")
    Select(page.find_element(By.ID, "provider")).select_by_value("openai")
    assert explain(page, model="gpt-4o-mini") == ("allow", "(ok)", "rule: support-bot")
    assert explain(page, model="gpt-3.5-turbo") == ("deny", "(model_not_allowed: deny_rule)", "rule: no-legacy")
    page.save_screenshot(str(ROOT / "build" / "explorer-screenshot.png"))


def test_a_pasted_policy_with_conditions_and_its_errors(page):
    policy = json.loads((EXPLORER / "demo-policy.json").read_text())
    policy["rules"][0]["when"] = {"source_cidrs": ["10.0.0.0/8"]}
    page.execute_script("document.getElementById('config').value = arguments[0]", json.dumps(policy))
    page.find_element(By.ID, "check").click()
    Select(page.find_element(By.ID, "provider")).select_by_value("openai")
    decision = explain(page, model="gpt-4o-mini", peer="192.0.2.1")
    assert decision[:2] == ("deny", "(condition_not_met: source_cidrs)")
    assert "source_cidrs" in page.find_element(By.ID, "conditions").text
    assert explain(page, peer="10.1.2.3")[0] == "allow"
    policy["rules"][0]["when"] = {"source_cidrs": ["10.0.0.1/8"]}
    page.execute_script("document.getElementById('config').value = arguments[0]", json.dumps(policy))
    page.find_element(By.ID, "check").click()
    status = page.find_element(By.ID, "config-status")
    assert status.get_attribute("data-path") == "rules[0].when.source_cidrs[0]"
    assert "host bits" in status.text


def test_a_tool_question_of_an_mcp_server(page):
    policy = json.loads((EXPLORER / "demo-policy.json").read_text())
    triage = "spiffe://example.org/ns/agents/sa/triage"
    policy["providers"].append({"name": "github", "api": "mcp", "match": {"path_prefix": "/github/"},
                                "credential": {"type": "api_key", "env": "GITHUB_MCP_TOKEN"},
                                "session_key": {"env": "MCP_SESSION_KEY"}})
    policy["rules"] += [
        {"id": "triage-tools", "effect": "allow", "workloads": [triage], "providers": ["github"],
         "mcp": ["tools/list"], "tools": ["search_issues", "delete_*"], "arguments": {"search_issues": {"repo": ["acme/*"]}}},
        {"id": "never-delete", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["github"],
         "tools": ["delete_*"]},
    ]
    page.execute_script("document.getElementById('config').value = arguments[0]", json.dumps(policy))
    page.find_element(By.ID, "check").click()
    Select(page.find_element(By.ID, "provider")).select_by_value("github")
    try:
        # The model field keeps its value: an MCP question leaves it out.
        assert explain(page, spiffe_id=triage, tool="search_issues", arguments='{"repo": "acme/api"}') == \
            ("allow", "(ok)", "rule: triage-tools")
        assert 'the tool "search_issues"' in page.find_element(By.ID, "message").text
        assert explain(page, arguments='{"repo": "other/secret"}') == \
            ("deny", "(argument_not_allowed: argument_not_allowed)", "rule: triage-tools")
        assert explain(page, tool="delete_repo", arguments="{}") == \
            ("deny", "(tool_not_allowed: deny_rule)", "rule: never-delete")
        page.find_element(By.ID, "tool").clear()
        page.find_element(By.ID, "arguments").clear()
        assert explain(page, method="tools/list") == ("allow", "(ok)", "rule: triage-tools")
    finally:
        for element_id in ("tool", "arguments", "method"):
            page.find_element(By.ID, element_id).clear()
        fill(page, "spiffe-id", "spiffe://example.org/ns/support/sa/bot")


def test_the_filter_tree_has_no_browser_glue():
    tree = subprocess.run(["cargo", "tree", "-p", "modelgate-filter", "--target", "wasm32-wasip1", "-e", "normal,build",
                           "-f", "{p} {f}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert tree.returncode == 0, tree.stderr
    assert "wasm-bindgen" not in tree.stdout and "js-sys" not in tree.stdout
    getrandom = [line for line in tree.stdout.splitlines() if "getrandom v" in line]
    assert getrandom and not [line for line in getrandom if "js" in line.split()[-1].split(",")], getrandom
