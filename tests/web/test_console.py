"""The console in headless Chromium against a real server: log in with TOTP, search,
reveal under a ticket, get denied, approve an export, see charts; every role's main
page screenshotted into docs/img; no seeded personal value in anything served to a
role before it reveals, and none in any URL."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyotp
import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.access.network import PASSWORD
from tests.conftest import scan_text
from tests.web.conftest import SHOTS, Console

TIMEOUT = 15_000


@dataclass
class Visit:
    """One browser context (its own sessionStorage) and what it fetched."""

    page: Page
    urls: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)

    def served(self) -> str:
        """Everything the server sent this context so far, plus the live DOM."""
        return "\n".join([*self.bodies, self.page.content()])


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    seen = Visit(page)

    def on_response(response: Response) -> None:
        seen.urls.append(response.url)
        if response.request.resource_type in ("fetch", "xhr", "document"):
            with contextlib.suppress(Exception):  # a redirect has no body
                seen.bodies.append(response.text())

    page.on("response", on_response)
    yield seen
    context.close()


def login(c: Console, v: Visit, username: str) -> None:
    page = v.page
    page.goto(f"{c.url}/console/")
    expect(page.locator("h1")).to_have_text("登录")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    if username.startswith("courier"):
        page.fill("#login-device", f"dev-{username}")
    else:
        page.fill("#login-totp", pyotp.TOTP(c.net.totp[username]).now())
    page.click("#login-submit")
    page.wait_for_url(re.compile(r"/console/(courier|desk|manager|security|admin)$"))


def assert_no_pii(c: Console, v: Visit) -> None:
    leaked = scan_text(v.served(), c.needles)
    assert leaked == [], f"personal data served before any reveal: {len(leaked)} values"


def assert_clean_urls(c: Console, v: Visit) -> None:
    for url in v.urls:
        assert "wg_" not in url, "a session token in a URL"
        assert scan_text(url, c.needles) == [], "personal data in a URL"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)


def remaining(page: Page, window: str = "hour") -> int:
    return int(page.locator(f"#allowance-{window}-remaining").inner_text())


def test_login_page_is_chinese_self_contained_and_switches_to_english(
    console: Console, visit: Visit
) -> None:
    page = visit.page
    page.goto(f"{console.url}/console/")
    expect(page.locator("h1")).to_have_text("登录")
    shot(page, "login")
    page.click("#lang-toggle")
    expect(page.locator("h1")).to_have_text("Log in")
    page.click("#lang-toggle")
    expect(page.locator("h1")).to_have_text("登录")
    # Every asset comes from this server: no CDN, no external font.
    assert all(u.startswith(console.url) for u in visit.urls), visit.urls
    html = page.content()
    assert "http://" not in html.replace(console.url, "") and "https://" not in html
    page.fill("#login-username", "cs1")
    page.fill("#login-password", "wrong password!!")
    page.fill("#login-totp", "000000")
    page.click("#login-submit")
    expect(page.locator("#flash.error")).to_be_visible()
    assert page.url.endswith("/console/")


def test_desk_search_reveal_with_ticket_then_denied(console: Console, visit: Visit) -> None:
    page = visit.page
    login(console, visit, "cs1")
    expect(page.locator("#allowance-hour-remaining")).to_have_text("20")
    number = console.net.s1_numbers[5]
    row = console.row(number)

    page.check("input[name=by][value=number]")
    page.fill("#search-query", number)
    page.click("#search-submit")
    result = page.locator(f"#results tr[data-number='{number}']")
    expect(result).to_be_visible()
    # By phone: the phone travels only in the POST body.
    other = console.net.s1_numbers[6]
    page.check("input[name=by][value=phone]")
    page.fill("#search-query", console.row(other)["recipient"]["phone"])
    page.click("#search-submit")
    expect(page.locator(f"#results tr[data-number='{other}']")).to_be_visible()
    assert_no_pii(console, visit)
    shot(page, "desk")

    page.check("input[name=by][value=number]")
    page.fill("#search-query", number)
    page.click("#search-submit")
    page.locator(f"#results tr[data-number='{number}'] input").check()
    page.fill("#reveal-ticket", "TK-A-77")
    page.click("#reveal-submit")
    phone = page.locator("#revealed-fields dd[data-field='recipient.phone']")
    expect(phone).to_be_visible()
    digits = "".join(ch for ch in row["recipient"]["phone"] if ch.isdigit())[-11:]
    assert digits in "".join(ch for ch in phone.inner_text() if ch.isdigit())
    expect(page.locator("#allowance-hour-remaining")).to_have_text("19")
    shot(page, "desk-revealed")

    # The ticket is now bound to the recipient: the sender's name is refused.
    page.uncheck("input[name=field][value='recipient.phone']")
    page.check("input[name=field][value='sender.name']")
    page.click("#reveal-submit")
    expect(page.locator("#flash.error")).to_contain_text("cs_agent.ticket")
    expect(page.locator("#revealed")).to_be_hidden()
    assert row["sender"]["name"] not in page.content()
    assert_clean_urls(console, visit)


def test_clerk_is_denied_another_stations_waybill(console: Console, visit: Visit) -> None:
    page = visit.page
    login(console, visit, "clerk1")
    assert page.url.endswith("/console/desk")
    expect(page.locator("#purpose-label")).to_be_visible()
    number = console.net.other_numbers[0]
    page.fill("#search-query", number)
    page.click("#search-submit")
    # Outside the clerk's view: answered exactly like an unknown waybill.
    expect(page.locator("#flash.error")).to_be_visible()
    expect(page.locator("#results td.empty")).to_be_visible()
    assert_no_pii(console, visit)
    assert_clean_urls(console, visit)


def test_security_approves_export_and_sees_charts(console: Console, visit: Visit) -> None:
    page = visit.page
    login(console, visit, "sec1")
    bars = page.locator("#chart-roles svg rect.bar")
    expect(bars.first).to_be_visible()
    assert bars.count() >= 1
    expect(page.locator("#chart-units svg rect.bar").first).to_be_visible()
    row = page.locator(f"#exports tr[data-export='{console.export_id}']")
    expect(row).to_contain_text("requested")
    expect(row).to_contain_text("sec2")  # the requester, by name
    assert_no_pii(console, visit)
    shot(page, "security")
    row.get_by_role("button", name="批准").click()
    expect(row).to_contain_text("approved")
    # Audit explorer: who looked at the waybill the clerk revealed while seeding.
    page.fill("#audit-query", console.net.s1_numbers[1])
    page.click("#audit-form button[type=submit]")
    expect(page.locator("#audit tbody tr").first).to_contain_text("clerk1")
    page.select_option("#span", "week")
    expect(page.locator("#chart-roles svg rect.bar").first).to_be_visible()
    page.click("#lang-toggle")
    expect(page.locator(".page-title")).to_have_text("Security")
    shot(page, "security-en")
    assert_no_pii(console, visit)
    assert_clean_urls(console, visit)


def test_manager_sees_team_against_tiers(console: Console, visit: Visit) -> None:
    page = visit.page
    login(console, visit, "manager1")
    expect(page.locator("#team tbody tr", has_text="clerk1")).to_contain_text("3 / ")
    expect(page.locator("#team-chart svg rect.bar").first).to_be_attached()
    assert page.locator("#team tbody tr", has_text="clerk2").count() == 0  # another station
    assert_no_pii(console, visit)
    shot(page, "manager")
    assert_clean_urls(console, visit)


def test_courier_deliveries_resolve_call_and_deliver(console: Console, visit: Visit) -> None:
    page = visit.page
    login(console, visit, "courier1")
    expect(page.locator("#deliveries tbody tr", has_text=console.assigned)).to_be_visible()
    assert_no_pii(console, visit)
    page.fill("#resolve-token", console.qr_token)
    page.click("#resolve-form button[type=submit]")
    address = page.locator("#resolved-address")
    expect(address).not_to_be_empty()
    detail = console.row(console.assigned)["recipient"]["address"]
    assert address.inner_text().replace(" ", "").endswith(detail[-4:])
    expect(page.locator("#resolved-call")).to_contain_text("转")
    shot(page, "courier")
    page.fill("#deliver-proof", "POD-A1")
    page.click("#deliver-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text(console.assigned)
    expect(page.locator("#resolved")).to_be_hidden()
    assert_clean_urls(console, visit)


def test_admin_checks_policy_before_applying(console: Console, visit: Visit) -> None:
    page = visit.page
    login(console, visit, "admin1")
    expect(page.locator("#users tbody tr", has_text="cs1")).to_be_visible()
    expect(page.locator("#units tbody tr", has_text="S1")).to_be_visible()
    expect(page.locator("#policy-text")).not_to_be_empty()
    apply = page.locator("#policy-apply")
    expect(apply).to_be_disabled()
    text = page.locator("#policy-text").input_value()
    page.fill("#policy-text", text.replace("[roles.courier]", "[roles.courier]\nbogus = 1", 1))
    page.click("#policy-check")
    expect(page.locator("#policy-status.bad")).to_contain_text("bogus")
    expect(apply).to_be_disabled()
    bumped = re.sub(
        r"(?m)^version\s*=\s*(\d+)", lambda m: f"version = {int(m[1]) + 1}", text, count=1
    )
    page.fill("#policy-text", bumped)
    page.click("#policy-check")
    expect(page.locator("#policy-status.ok")).to_be_visible()
    expect(apply).to_be_enabled()
    assert_no_pii(console, visit)
    shot(page, "admin")
    apply.click()
    expect(page.locator("#policy-status.ok")).to_contain_text("已生效")
