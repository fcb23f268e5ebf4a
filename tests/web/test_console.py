"""The console in headless Chromium against a real server: log in with TOTP, search,
reveal under a ticket, get denied, approve an export, see charts, administer units and
users; every role's main page screenshotted into docs/img; no seeded personal value in
anything served to a role before it reveals, and none in any URL."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, Locator, Page, Response, expect

from tests.access.network import PASSWORD
from tests.conftest import scan_bytes, scan_text
from tests.web.conftest import SHOTS, Console
from waybillguard.entrypoints.http.deps import SESSION_CACHE_SECONDS

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


@contextlib.contextmanager
def open_visit(browser: Browser) -> Iterator[Visit]:
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
    try:
        yield seen
    finally:
        context.close()


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    with open_visit(browser) as seen:
        yield seen


def submit_login(
    c: Console, v: Visit, username: str, password: str = PASSWORD, secret: str | None = None
) -> None:
    page = v.page
    page.goto(f"{c.url}/console/")
    expect(page.locator("h1")).to_have_text("登录")
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    if username.startswith("courier"):
        page.fill("#login-device", f"dev-{username}")
    else:
        page.fill("#login-totp", pyotp.TOTP(secret or c.net.totp[username]).now())
    page.click("#login-submit")


def login(
    c: Console, v: Visit, username: str, password: str = PASSWORD, secret: str | None = None
) -> None:
    submit_login(c, v, username, password, secret)
    v.page.wait_for_url(re.compile(r"/console/(courier|desk|manager|security|admin)$"))
    # Kept for `resume`: a TOTP code is accepted once, so a second login in the same
    # 30-second step would be refused as a replay.
    c.extra[f"session:{username}"] = v.page.evaluate("sessionStorage.getItem('wg.session')")


def resume(c: Console, v: Visit, username: str, page_name: str) -> None:
    """The session of an earlier `login` in this new browser context, else a login."""
    saved = c.extra.get(f"session:{username}")
    if saved is None:
        login(c, v, username)
        return
    v.page.goto(f"{c.url}/console/")
    v.page.evaluate("saved => sessionStorage.setItem('wg.session', saved)", saved)
    v.page.goto(f"{c.url}/console/{page_name}")
    expect(v.page.locator("#who-name")).to_have_text(username)


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
    # A made-up ticket id, without the customer's phone, opens nothing and reveals nothing.
    result.locator("input").check()
    page.fill("#reveal-ticket", "TK-MADE-UP")
    page.click("#reveal-submit")
    expect(page.locator("#flash.error")).to_contain_text("cs_agent.ticket_not_open")
    expect(page.locator("#revealed")).to_be_hidden()

    # The customer calls from their phone: searching by it (the phone travels only in the
    # POST body) also keeps it as the contact that verifies the new ticket's party.
    page.check("input[name=by][value=phone]")
    page.fill("#search-query", row["recipient"]["phone"])
    page.click("#search-submit")
    expect(page.locator(f"#results tr[data-number='{number}']")).to_be_visible()
    expect(page.locator("#search-query")).to_have_value("")
    assert_no_pii(console, visit)
    shot(page, "desk")

    page.locator(f"#results tr[data-number='{number}'] input").check()
    page.fill("#reveal-ticket", "TK-A-77")
    page.click("#reveal-submit")
    phone = page.locator("#revealed-fields dd[data-field='recipient.phone']")
    expect(phone).to_be_visible()
    digits = "".join(ch for ch in row["recipient"]["phone"] if ch.isdigit())[-11:]
    assert digits in "".join(ch for ch in phone.inner_text() if ch.isdigit())
    expect(page.locator("#allowance-hour-remaining")).to_have_text("19")
    expect(page.locator("#reveal-contact")).to_have_value("")
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


def test_clerk_prints_a_label_as_a_pdf_download(console: Console, browser: Browser) -> None:
    number = console.net.s1_numbers[7]
    with open_visit(browser) as clerk:
        page = clerk.page
        resume(console, clerk, "clerk1", "desk")
        expect(page.locator("#print-bar")).to_be_visible()
        expect(page.locator("#label-size")).to_have_value("100x180")
        page.fill("#search-query", number)
        page.click("#search-submit")
        row = page.locator(f"#results tr[data-number='{number}']")
        print_button = row.get_by_role("button", name="打印面单")
        expect(print_button).to_be_visible()
        page.select_option("#label-size", "76x130")
        with page.expect_download() as caught:
            print_button.click()
        download = caught.value
        assert download.failure() is None
        assert download.suggested_filename == f"{number}-76x130.pdf"
        path = download.path()
        pdf = path.read_bytes()
        assert pdf.startswith(b"%PDF")
        assert scan_bytes(pdf, console.needles) == []
        pdftotext = shutil.which("pdftotext")
        if pdftotext is not None:
            text = subprocess.run(
                [pdftotext, "-layout", str(path), "-"], capture_output=True, check=True
            ).stdout.decode("utf-8")
            assert number in text  # the text layer was read, not an empty page
            assert scan_text(text, console.needles) == []
        # The audit event the API wrote before answering, named in the message.
        expect(page.locator("#flash")).to_contain_text(number)
        expect(page.locator("#flash")).to_contain_text("事件 #")
        expect(page.locator("#flash.error")).to_have_count(0)
        # Printing did not pick the waybill for a reveal.
        expect(page.locator("#reveal-submit")).to_be_disabled()
        assert_no_pii(console, clerk)
        shot(page, "desk-print")
        page.click("#lang-toggle")
        expect(row.locator("button.print")).to_have_text("Print label")
        page.click("#lang-toggle")
        assert_clean_urls(console, clerk)
    with open_visit(browser) as agent:
        resume(console, agent, "cs1", "desk")
        page = agent.page
        page.fill("#search-query", number)
        page.click("#search-submit")
        expect(page.locator(f"#results tr[data-number='{number}']")).to_be_visible()
        expect(page.locator("#print-bar")).to_be_hidden()
        expect(page.locator("#print-col")).to_be_hidden()
        expect(page.locator("#results button")).to_have_count(0)


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


# -- administrator: units and users ---------------------------------------------------------
NEW_PASSWORD = "a fresh long passphrase"
RESET_PASSWORD = "another long passphrase"
BASE32 = re.compile(r"[A-Z2-7]{16,}=*")


def call_api(page: Page, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """The API as the page's own session (token from sessionStorage, in a header)."""
    status, data = page.evaluate(
        """async ([method, path, body]) => {
            const s = JSON.parse(sessionStorage.getItem('wg.session'));
            const init = {method, headers: {Authorization: 'Bearer ' + s.token}};
            if (body !== null) {
                init.headers['Content-Type'] = 'application/json';
                init.body = JSON.stringify(body);
            }
            const r = await fetch(path, init);
            return [r.status, await r.json()];
        }""",
        [method, path, body],
    )
    return int(status), data


def free_district(page: Page) -> str:
    """A real district code no station covers yet (stations may not overlap)."""
    status, units = call_api(page, "GET", "/api/v1/units?limit=500")
    assert status == 200
    covered = {code for u in units["items"] for code in u["covers"]}
    return next(c for c in ("540102", "650102", "460105", "440305") if c not in covered)


def user_row(page: Page, username: str) -> Locator:
    return page.locator(f"#users tr[data-user='{username}']")


def add_user_form(
    page: Page, username: str, role: str, unit: str, grade: str = "", password: str = NEW_PASSWORD
) -> None:
    page.fill("#user-username", username)
    page.select_option("#user-role", role)
    page.fill("#user-unit", unit)
    page.fill("#user-grade", grade)
    page.fill("#user-password", password)
    page.fill("#user-password-again", password)
    page.click("#user-submit")


def test_admin_adds_station_and_user_disables_enables_and_resets(
    console: Console, visit: Visit, browser: Browser
) -> None:
    page = visit.page
    resume(console, visit, "admin1", "admin")
    expect(user_row(page, "cs1")).to_be_visible()
    district = free_district(page)

    # A station under the region, covering one district.
    page.fill("#unit-code", "S9")
    page.select_option("#unit-kind", "station")
    page.fill("#unit-name", "九号网点")
    page.fill("#unit-parent", "EAST")
    page.fill("#unit-covers", district)
    page.click("#unit-submit")
    expect(page.locator("#unit-status.ok")).to_contain_text("S9")
    unit_row = page.locator("#units tr[data-unit='S9']")
    expect(unit_row).to_contain_text("九号网点")
    expect(unit_row).to_contain_text("网点")
    expect(unit_row).to_contain_text("EAST")
    expect(unit_row).to_contain_text(district)

    # A clerk in it: the TOTP secret is shown once, exactly as the API returned it.
    add_user_form(page, "clerk9", "station_clerk", "S9")
    expect(page.locator("#user-status.ok")).to_contain_text("clerk9")
    expect(page.locator("#secret-box")).to_be_visible()
    secret = page.locator("#secret-value").inner_text()
    assert BASE32.fullmatch(secret), "not a base32 TOTP secret"
    expect(page.locator("#secret-uri")).to_contain_text(f"secret={secret}")
    assert page.locator("#user-password").input_value() == ""
    row = user_row(page, "clerk9")
    expect(row).to_contain_text("网点文员")
    expect(row).to_contain_text("S9")
    expect(row).to_contain_text("正常")
    expect(unit_row.locator("td").nth(5)).to_have_text("1")  # members
    shot(page, "admin-users")
    page.click("#secret-close")
    expect(page.locator("#secret-box")).to_be_hidden()
    assert secret not in page.content(), "the secret stays in the page after closing"

    # The new clerk logs in with it and lands on the desk.
    with open_visit(browser) as clerk:
        login(console, clerk, "clerk9", NEW_PASSWORD, secret)
        assert clerk.page.url.endswith("/console/desk")

        # A grade, from the row.
        row.locator("select").select_option("3")
        row.get_by_role("button", name="设置等级").click()
        expect(page.locator("#users-status.ok")).to_contain_text("clerk9 → 3")
        status, stored = call_api(page, "GET", "/api/v1/users/clerk9")
        assert (status, stored["grade"]) == (200, 3)

        # Disabled: the open session ends and a new login is refused.
        row.get_by_role("button", name="管理").click()
        expect(page.locator("#panel-user")).to_have_text("clerk9")
        page.fill("#disable-reason", "left the company")
        page.click("#disable-submit")
        expect(page.locator("#panel-status.ok")).to_contain_text("已停用")
        expect(row).to_contain_text("已停用")
        expect(page.locator("#enable-submit")).to_be_visible()
        shot(page, "admin-manage")
        # A worker may serve a session it checked within the last SESSION_CACHE_SECONDS.
        clerk.page.wait_for_timeout(int(SESSION_CACHE_SECONDS * 1000) + 200)
        clerk.page.reload()
        clerk.page.wait_for_url(re.compile(r"/console/$"))
        submit_login(console, clerk, "clerk9", NEW_PASSWORD, secret)
        expect(clerk.page.locator("#flash.error")).to_contain_text("账户已停用")
        assert clerk.page.url.endswith("/console/")

        # Enabled again, then a new password and a new TOTP secret.
        page.click("#enable-submit")
        expect(page.locator("#panel-status.ok")).to_contain_text("已启用")
        expect(row).to_contain_text("正常")
        page.fill("#reset-password", RESET_PASSWORD)
        page.fill("#reset-password-again", RESET_PASSWORD)
        page.check("#reset-totp")
        page.click("#reset-submit")
        expect(page.locator("#panel-status.ok")).to_contain_text("已重置密码")
        expect(page.locator("#secret-box")).to_be_visible()
        expect(page.locator("#secret-user")).to_have_text("clerk9")
        second = page.locator("#secret-value").inner_text()
        assert BASE32.fullmatch(second) and second != secret
        page.click("#secret-close")

        submit_login(console, clerk, "clerk9", NEW_PASSWORD, second)
        expect(clerk.page.locator("#flash.error")).to_contain_text("密码错误")
    with open_visit(browser) as clerk:
        login(console, clerk, "clerk9", RESET_PASSWORD, second)
        assert clerk.page.url.endswith("/console/desk")
        assert_clean_urls(console, clerk)

    # The station disabled (after a confirmation): nobody in it can log in.
    page.once("dialog", lambda dialog: dialog.accept())
    unit_row.get_by_role("button", name="停用").click()
    expect(page.locator("#units-status.ok")).to_contain_text("S9")
    expect(unit_row).to_contain_text("已停用")
    expect(unit_row.get_by_role("button")).to_have_count(0)
    assert page.locator("#unit-codes option[value='S9']").count() == 0
    with open_visit(browser) as clerk:
        submit_login(console, clerk, "clerk9", RESET_PASSWORD, second)
        expect(clerk.page.locator("#flash.error")).to_contain_text("账户已停用")
        assert clerk.page.url.endswith("/console/")

    # Neither secret nor password in a URL or the server's log.
    log = console.log.read_text(errors="replace")
    for value in (secret, second, NEW_PASSWORD, RESET_PASSWORD):
        assert all(value not in url for url in visit.urls)
        assert value not in log
    assert_no_pii(console, visit)
    assert_clean_urls(console, visit)


def test_admin_bad_input_shows_the_error_and_stores_nothing(console: Console, visit: Visit) -> None:
    page = visit.page
    resume(console, visit, "admin1", "admin")
    expect(user_row(page, "cs1")).to_be_visible()
    status, before = call_api(page, "GET", "/api/v1/users?limit=500")
    assert status == 200
    status, units_before = call_api(page, "GET", "/api/v1/units?limit=500")
    s1_covers = next(u["covers"] for u in units_before["items"] if u["code"] == "S1")
    error = page.locator("#user-status.bad")

    # An unknown unit.
    add_user_form(page, "ghost9", "cs_agent", "NOPE")
    expect(error).to_contain_text("no such unit")
    expect(error).to_contain_text("所属单位")
    expect(page.locator("#user-unit.invalid")).to_be_visible()
    expect(page.locator("#secret-box")).to_be_hidden()
    # A username taken already (cs1 stays as it was).
    add_user_form(page, "cs1", "station_manager", "S2")
    expect(error).to_contain_text("already exists")
    expect(page.locator("#user-username.invalid")).to_be_visible()
    expect(user_row(page, "cs1")).to_contain_text("HQ")
    # A grade out of 0-9.
    add_user_form(page, "ghost9", "cs_agent", "HQ", grade="12")
    expect(error).to_contain_text("等级：超出允许范围")
    expect(page.locator("#user-grade.invalid")).to_be_visible()
    shot(page, "admin-error")
    # Two different passwords: nothing is sent.
    page.fill("#user-username", "ghost9")
    page.fill("#user-unit", "HQ")
    page.fill("#user-grade", "")
    page.fill("#user-password", NEW_PASSWORD)
    page.fill("#user-password-again", NEW_PASSWORD + "!")
    page.click("#user-submit")
    expect(error).to_contain_text("两次输入的密码不一致")
    expect(page.locator("#secret-box")).to_be_hidden()

    unit_error = page.locator("#unit-status.bad")
    # A district another station covers already.
    page.fill("#unit-code", "S8")
    page.fill("#unit-name", "八号网点")
    page.fill("#unit-parent", "EAST")
    page.fill("#unit-covers", s1_covers[0])
    page.click("#unit-submit")
    expect(unit_error).to_contain_text("already covered by station S1")
    expect(page.locator("#unit-covers.invalid")).to_be_visible()
    # An unknown parent.
    page.fill("#unit-parent", "NOPE")
    page.fill("#unit-covers", "")
    page.click("#unit-submit")
    expect(unit_error).to_contain_text("no such unit")
    expect(page.locator("#unit-parent.invalid")).to_be_visible()
    page.click("#lang-toggle")
    page.click("#unit-submit")
    expect(unit_error).to_contain_text("Parent · parent: no such unit")
    page.click("#lang-toggle")

    # Nothing was stored.
    assert call_api(page, "GET", "/api/v1/users/ghost9")[0] == 404
    status, after = call_api(page, "GET", "/api/v1/users?limit=500")
    assert after["items"] == before["items"]
    status, units_after = call_api(page, "GET", "/api/v1/units?limit=500")
    assert units_after["items"] == units_before["items"]
    assert user_row(page, "ghost9").count() == 0
    assert page.locator("#units tr[data-unit='S8']").count() == 0
    assert_no_pii(console, visit)
    assert_clean_urls(console, visit)


def test_admin_adds_courier_then_binds_the_device(
    console: Console, visit: Visit, browser: Browser
) -> None:
    page = visit.page
    resume(console, visit, "admin1", "admin")
    expect(page.locator("#user-device-label")).to_be_hidden()
    page.select_option("#user-role", "courier")
    expect(page.locator("#user-device-label")).to_be_visible()
    add_user_form(page, "courier9", "courier", "S2")
    # Couriers have no TOTP: nothing to show once, and the page says how they log in.
    expect(page.locator("#user-status.ok")).to_contain_text("快递员在登记的设备上登录")
    expect(page.locator("#secret-box")).to_be_hidden()
    row = user_row(page, "courier9")
    expect(row).to_contain_text("快递员")
    with open_visit(browser) as courier:
        submit_login(console, courier, "courier9", NEW_PASSWORD)
        expect(courier.page.locator("#flash.error")).to_contain_text("未登记设备")

        row.get_by_role("button", name="管理").click()
        expect(page.locator("#device-form")).to_be_visible()
        expect(page.locator("#reset-totp-label")).to_be_hidden()
        page.fill("#bind-device", "dev-courier9")
        page.click("#device-submit")
        expect(page.locator("#panel-status.ok")).to_contain_text("已登记设备")
        status, stored = call_api(page, "GET", "/api/v1/users/courier9")
        assert (status, stored["device_bound"]) == (200, True)

        login(console, courier, "courier9", NEW_PASSWORD)
        assert courier.page.url.endswith("/console/courier")
    assert_clean_urls(console, visit)
