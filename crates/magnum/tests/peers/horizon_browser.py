"""Drives Horizon's Container Infra panels (magnum-ui) in Debian's headless
chromium through selenium, as a user would, for tests/horizon.rs.

    horizon_browser.py HORIZON_URL OUT_DIR ROLE NAME IMAGE [CLUSTER_TEMPLATE]

ROLE `member`: signs in as a-member (project-a), opens Project > Container
Infra > Cluster Templates, creates template NAME (image IMAGE) through the
form and shows its details; with CLUSTER_TEMPLATE, creates cluster
NAME-cluster from it through the Create Cluster form, waits for
CREATE_COMPLETE (having seen CREATE_IN_PROGRESS), shows its details,
resizes it to 2 workers (UPDATE_COMPLETE), deletes it, then deletes its template. ROLE `reader`: signs in as a-reader, sees
template NAME in the list, has a create through the same form refused
(Horizon shows the API's 403 as an error) and opens the clusters list. Each step saves
OUT_DIR/NN-step.png and prints one JSON line {"step", "screenshot"}; the
first step that fails saves OUT_DIR/NN-step-FAILED.png, prints the reason
and exits 1.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, OUT, ROLE, NAME, IMAGE = sys.argv[1:6]
# The template clusters are made from (the member's walk), made through
# the API with the test driver: magnum-ui's form offers no driver choice.
CLUSTER_TEMPLATE = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None
WAIT = 60


def browser():
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--disable-gpu"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=opts, service=service)


d = browser()
wait = WebDriverWait(d, WAIT)
steps = []


def shot(name, failed=False):
    n = len(steps) + 1
    path = f"{OUT}/{n:02d}-{name}{'-FAILED' if failed else ''}.png"
    d.save_screenshot(path)
    return path


def step(name, fn):
    try:
        fn()
    except (WebDriverException, AssertionError) as e:
        path = shot(name, failed=True)
        print(json.dumps({"step": name, "failed": str(e).splitlines()[0]
                          if str(e) else type(e).__name__,
                          "screenshot": path}), flush=True)
        d.quit()
        sys.exit(1)
    path = shot(name)
    steps.append(name)
    print(json.dumps({"step": name, "screenshot": path}), flush=True)


def xpath(x):
    return wait.until(ec.presence_of_element_located((By.XPATH, x)))


def clickable(x):
    return wait.until(ec.element_to_be_clickable((By.XPATH, x)))


def no_errors():
    """No Horizon error toast is shown (every API call answered)."""
    time.sleep(1)
    errors = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".alert-danger")
              if e.is_displayed()]
    assert not errors, f"Horizon shows errors: {errors}"


def sign_in(user):
    def go():
        d.get(f"{URL}/auth/login/")
        xpath("//input[@id='id_username']").send_keys(user)
        d.find_element(By.ID, "id_password").send_keys("secret")
        d.find_element(By.ID, "loginBtn").click()
        wait.until(lambda _: "/auth/login" not in d.current_url)
        xpath(f"//*[contains(@class, 'user-menu') or contains(., '{user}')]")
    step(f"sign-in-{user}", go)


def open_panel(label, href):
    def go():
        if not d.find_elements(By.XPATH, f"//a[contains(@href, '{href}')]"
                               "[not(ancestor::*[contains(@class,'collapse')"
                               " and not(contains(@class,'in'))])]"):
            clickable("//a[normalize-space()='Container Infra']").click()
        clickable(f"//a[contains(@href, '{href}')]").click()
        wait.until(lambda _: label in d.find_element(By.TAG_NAME, "h1").text)
        # The table has loaded (rows or the empty text).
        xpath("//*[contains(., 'Displaying')]")
        no_errors()
    step(f"open-{href.strip('/').replace('/', '-')}", go)


def choose(name, text):
    """Pick the option of select NAME whose text contains TEXT, once the
    form has loaded it."""
    x = f"//select[@name='{name}']"
    wait.until(ec.visibility_of_element_located((By.XPATH, x)))
    try:
        option = WebDriverWait(d, 30).until(lambda _: next(
            (o for o in Select(d.find_element(By.XPATH, x)).options
             if text in o.text), None))
    except WebDriverException:
        shown = [o.text for o in Select(d.find_element(By.XPATH, x)).options]
        raise AssertionError(f"{name}: no option with {text!r} in {shown}")
    Select(d.find_element(By.XPATH, x)).select_by_visible_text(option.text)


def wizard_tab(label):
    clickable(f"//div[contains(@class,'modal')]//a[normalize-space()='{label}']").click()


def submit():
    clickable("//div[contains(@class,'modal')]//button[normalize-space()='Submit']").click()
    wait.until(ec.invisibility_of_element_located(
        (By.CSS_SELECTOR, ".modal-dialog")))


def row(name):
    return xpath(f"//table//tr[.//a[normalize-space()='{name}'] or "
                 f"./td[normalize-space()='{name}']]")


def member():
    sign_in("a-member")
    open_panel("Cluster Templates", "/project/cluster_templates/")

    step("template-form", lambda: fill_template_form(NAME))

    def create_template():
        submit()
        row(NAME)
        no_errors()
    step("template-created", create_template)

    def template_details():
        clickable(f"//table//a[normalize-space()='{NAME}']").click()
        wait.until(lambda _: all(
            t in d.find_element(By.TAG_NAME, "body").text
            for t in (NAME, "Node Spec", IMAGE, "Cluster Distro")))
        assert "/ngdetails/OS::Magnum::ClusterTemplate/" in d.current_url, \
            d.current_url
        no_errors()
    step("template-details", template_details)
    if CLUSTER_TEMPLATE:
        clusters()


def row_action(name, label):
    """Click action LABEL of the table row of NAME (its button, or in its
    menu)."""
    r = row(name)
    direct = [e for e in r.find_elements(
        By.XPATH, f".//*[self::button or self::a][normalize-space()='{label}']")
        if e.is_displayed()]
    if not direct:
        r.find_element(By.XPATH, ".//*[contains(@class,'dropdown-toggle')]").click()
        direct = [e for e in r.find_elements(
            By.XPATH, f".//*[self::button or self::a][normalize-space()='{label}']")
            if e.is_displayed()]
    assert direct, f"no action {label!r} on {name}"
    direct[0].click()


def listed_after_reload(name):
    """Whether the table lists NAME once the reloaded page has its data.

    The table says "Displaying 0 items" before its list call has
    answered, so a row's absence means nothing until Angular has no call
    pending (a delete that passed on an unloaded list left the cluster
    and its template in place, in CI)."""
    d.refresh()
    xpath("//*[contains(., 'Displaying')]")
    WebDriverWait(d, 60).until(lambda _: d.execute_script(
        "var a = window.angular;"
        "var i = a && a.element(document.body).injector();"
        "return !!i && i.get('$http').pendingRequests.length === 0;"))
    return bool(d.find_elements(
        By.XPATH, f"//table//a[normalize-space()='{name}']"))


def status_of(name):
    """The status the clusters list shows for NAME, after a reload."""
    d.refresh()
    return row(name).text


def wait_status(name, want, seen):
    deadline = time.time() + 120
    while time.time() < deadline:
        text = status_of(name)
        for s in ("CREATE_IN_PROGRESS", "CREATE_COMPLETE", "UPDATE_IN_PROGRESS",
                  "UPDATE_COMPLETE", "DELETE_IN_PROGRESS", "CREATE_FAILED",
                  "UPDATE_FAILED"):
            if s in text and (not seen or seen[-1] != s):
                seen.append(s)
        if want in text:
            return
        assert "FAILED" not in text, f"{name}: {text}"
        time.sleep(2)
    raise AssertionError(f"{name} never showed {want}: saw {seen}")


def clusters():
    cluster = NAME + "-cluster"
    open_panel("Clusters", "/project/clusters/")

    def fill_cluster():
        clickable("//button[contains(., 'Create Cluster')]").click()
        xpath("//input[@name='name']").send_keys(cluster)
        choose("cluster_template_id", CLUSTER_TEMPLATE)
        choose("availability_zone", "nova")
        choose("keypair", "kp")
        wizard_tab("Size")
        choose("master_flavor_id", "m1.medium")
        # magnum-ui offers only flavors above its minimums (not m1.small).
        choose("flavor_id", "m1.medium")
        count = xpath("//div[contains(@class,'modal')]//input[@name='node_count']")
        count.clear()
        count.send_keys("1")
    step("cluster-form", fill_cluster)

    seen = []

    def created():
        submit()
        row(cluster)
        no_errors()
        wait_status(cluster, "CREATE_COMPLETE", seen)
        assert seen[0] == "CREATE_IN_PROGRESS", seen
    step("cluster-created", created)
    print(json.dumps({"statuses": seen}), flush=True)

    def details():
        clickable(f"//table//a[normalize-space()='{cluster}']").click()
        wait.until(lambda _: all(
            t in d.find_element(By.TAG_NAME, "body").text
            for t in (cluster, "CREATE_COMPLETE", CLUSTER_TEMPLATE)))
        no_errors()
    step("cluster-details", details)

    def resize():
        open_panel_quiet("/project/clusters/")
        row_action(cluster, "Resize Cluster")
        count = xpath("//div[contains(@class,'modal')]//input[@name='node_count']")
        count.clear()
        count.send_keys("2")
        submit()
        resized = []
        wait_status(cluster, "UPDATE_COMPLETE", resized)
        print(json.dumps({"statuses": resized}), flush=True)
    step("cluster-resized", resize)

    def delete():
        row_action(cluster, "Delete Cluster")
        clickable("//div[contains(@class,'modal')]"
                  "//button[normalize-space()='Delete Cluster']").click()
        deadline = time.time() + 120
        while time.time() < deadline:
            if not listed_after_reload(cluster):
                return
            time.sleep(2)
        raise AssertionError(f"{cluster} is still listed")
    step("cluster-deleted", delete)

    def template_deleted():
        # The cluster is gone, so its template may go too.
        open_panel_quiet("/project/cluster_templates/")
        row_action(CLUSTER_TEMPLATE, "Delete Cluster Template")
        clickable("//div[contains(@class,'modal')]"
                  "//button[normalize-space()='Delete Cluster Template']").click()
        deadline = time.time() + 60
        while time.time() < deadline:
            if not listed_after_reload(CLUSTER_TEMPLATE):
                no_errors()
                return
            time.sleep(2)
        raise AssertionError(f"{CLUSTER_TEMPLATE} is still listed")
    step("template-deleted", template_deleted)


def open_panel_quiet(href):
    d.get(URL + href)
    xpath("//*[contains(., 'Displaying')]")


def fill_template_form(name):
    clickable("//button[contains(., 'Create Cluster Template')]").click()
    xpath("//input[@name='name']").send_keys(name)
    choose("coe", "Kubernetes")
    wizard_tab("Node Spec")
    choose("image_id", IMAGE)
    wizard_tab("Network")
    choose("external_network_id", "public")


def reader():
    sign_in("a-reader")
    open_panel("Cluster Templates", "/project/cluster_templates/")
    step("reader-sees-templates", lambda: row(NAME))

    # magnum-ui offers the form to everyone; our API refuses a reader's
    # create (403), which Horizon shows as an error.
    step("reader-template-form", lambda: fill_template_form(NAME + "-reader"))

    def refused():
        clickable("//div[contains(@class,'modal')]"
                  "//button[normalize-space()='Submit']").click()
        wait.until(lambda _: any(
            "Unable to create" in e.text
            for e in d.find_elements(By.CSS_SELECTOR, ".alert-danger")))
    step("reader-create-refused", refused)
    open_panel("Clusters", "/project/clusters/")


{"member": member, "reader": reader}[ROLE]()
d.quit()
print(json.dumps({"done": steps}), flush=True)
