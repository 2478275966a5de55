"""The fleet's metrics leg, with real parts: boxes push through a Prometheus agent to the centre.

Three real daemons (one of 6 cameras, to measure a box's cost) each get a real Prometheus in agent
mode, configured from deploy/prometheus/agent.yml with only its example values replaced. They push
over HTTPS with a password file to a real Prometheus receiving remote writes, configured from
deploy/prometheus/prometheus.yml with the fleet's rules. Grafana does not run here: every PromQL
expression of the fleet dashboard is run against that receiver instead, and must answer for every
site. The new rules are checked by promtool, including that their unit tests catch a broken rule.

Longer than 400 lines: one fleet (three daemons, three agents and the centre, about 25 s to get
every metric family flowing) serves every check, from the dashboard's queries to a box going
offline; split in two files, each would start it again.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT, GatewayProcess, free_port, make_certificates, wait_until, write_config

sys.path.insert(0, str(ROOT / "tests" / "support"))
from deployed import fill

PROM_DIR = ROOT / "deploy" / "prometheus"
AGENT = PROM_DIR / "agent.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "camera-gateway-fleet.json"
BOXES = (("res-0042", "Lyon", 6), ("res-0043", "Villeurbanne", 2), ("res-0044", "Grenoble", 1))
SERIES_BUDGET = 300
"""Series a box of 6 cameras may cost the centre."""
SITES = {site for site, _, _ in BOXES}
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
REQUIRED_PANELS = (
    "Boxes not reporting",
    "Cameras up per site",
    "Recording",
    "Storage depth (days)",
    "Forward sessions to the centre",
    "Evictions",
    "Tamper conditions raised",
    "Privacy masks missing",
)
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="needs prometheus (Debian package)")


def bcrypt(password: str) -> str:
    """A bcrypt hash for the receiver's basic_auth_users, from the system's libcrypt."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2b$", 5, None, 0)
    return str(lib.crypt(password.encode(), salt).decode())


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


class PrometheusProcess:
    """A real Prometheus (server or agent) on a free loopback port, logging to a file."""

    def __init__(self, directory: Path, config: Path, *flags: str, port: int = 0) -> None:
        self.directory, self.config, self.flags = directory, config, flags
        self.port = port or free_port()
        self.log_path = directory / "prometheus.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    *flags,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def restarted(self) -> PrometheusProcess:
        """The same Prometheus again: same port, configuration and storage."""
        self.stop()
        return PrometheusProcess(self.directory, self.config, *self.flags, port=self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Fleet:
    receiver: PrometheusProcess
    context: ssl.SSLContext
    auth: str
    agents: dict[str, PrometheusProcess]
    agent_configs: dict[str, Path]
    receiver_dir: Path
    daemons: dict[str, GatewayProcess]

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"https://127.0.0.1:{self.receiver.port}/api/v1/{path}?{query}"
        request = urllib.request.Request(url, headers={"Authorization": self.auth})
        try:
            with urllib.request.urlopen(  # noqa: S310 - an https URL built just above
                request, timeout=10, context=self.context
            ) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as error:  # the reason is in the body
            raise AssertionError(f"{params}: {error.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def sites(self, expr: str) -> set[str]:
        return {sample["metric"].get("site", "") for sample in self.query(expr)}


def _ready(process: PrometheusProcess, fleet_tls: tuple[ssl.SSLContext, str] | None = None) -> bool:
    """Whether it answers /-/ready (the receiver over HTTPS, with a password)."""
    assert process.proc.poll() is None, process.log_path.read_text()[-3000:]
    port, context, headers = process.port, None, {}
    url = f"http://127.0.0.1:{port}/-/ready"
    if fleet_tls:
        context, headers = fleet_tls[0], {"Authorization": fleet_tls[1]}
        url = f"https://127.0.0.1:{port}/-/ready"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def _start_receiver(base: Path, pki: dict[str, Path], users: dict[str, str]) -> PrometheusProcess:
    """deploy/prometheus/ as the centre: prometheus.yml (its scrape job left without targets, as
    every box pushes) with the rules, at a 1 s evaluation interval."""
    directory = base / "centre"
    shutil.copytree(PROM_DIR, directory)
    for target in (directory / "targets").glob("*.yml"):
        target.unlink()
    config = directory / "prometheus.yml"
    config.write_text(
        fill(
            config.read_text(),
            {
                "scrape_interval: 15s": "scrape_interval: 1s",
                "evaluation_interval: 15s": "evaluation_interval: 1s",
                "scrape_timeout: 10s": "scrape_timeout: 1s",
            },
        )
    )
    result = promtool("check", "config", str(config), cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    web = {
        "tls_server_config": {"cert_file": str(pki["cert"]), "key_file": str(pki["key"])},
        "basic_auth_users": {name: bcrypt(password) for name, password in users.items()},
    }
    (directory / "web.yml").write_text(yaml.safe_dump(web))
    return PrometheusProcess(
        directory,
        config,
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.config.file={directory / 'web.yml'}",
        "--web.enable-remote-write-receiver",
    )


def _agent_config(
    directory: Path, site: str, city: str, port: int, receiver: int, ca: Path
) -> Path:
    """deploy/prometheus/agent.yml with this box's values, its intervals shortened to 1 s."""
    config = directory / "agent.yml"
    text = fill(
        AGENT.read_text(),
        {
            '["127.0.0.1:9108"]': f'["127.0.0.1:{port}"]',
            "res-0042": site,
            "Lyon": city,
            "https://prometheus.example.org/api/v1/write": (
                f"https://127.0.0.1:{receiver}/api/v1/write"
            ),
            "/etc/prometheus/centre-ca.pem": str(ca),
            "/etc/prometheus/centre-remote-write.password": str(directory / "password"),
            "scrape_interval: 15s": "scrape_interval: 1s",
            "scrape_timeout: 10s": "scrape_timeout: 1s",
            "batch_send_deadline: 5s": "batch_send_deadline: 1s",
            # cut like the intervals: a retry backed off to the shipped minute would land after
            # the outage test's wait when the centre is slow to come back (a loaded box)
            "max_backoff: 1m": "max_backoff: 5s",
        },
    )
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("fleet")
    pki = make_certificates(base / "pki", "centre")
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    passwords = {site: secrets.token_urlsafe(18) for site, _, _ in BOXES}
    passwords["grafana"] = secrets.token_urlsafe(18)
    auth = "Basic " + base64.b64encode(f"grafana:{passwords['grafana']}".encode()).decode()
    started: list[PrometheusProcess] = []
    daemons: dict[str, GatewayProcess] = {}
    made: Fleet | None = None
    try:
        receiver = _start_receiver(base, pki, passwords)
        started.append(receiver)
        wait_until(lambda: _ready(receiver, (context, auth)), 20, "the receiving Prometheus")
        agents: dict[str, PrometheusProcess] = {}
        configs: dict[str, Path] = {}
        for site, city, count in BOXES:
            directory = base / site
            directory.mkdir()
            cameras = [
                {"id": f"hall-{n}", "url": f"sim://{site}-{n}?width=320&height=240&fps=10&gop=1"}
                for n in range(count)
            ]
            port = free_port()
            gw_config = write_config(
                directory / "gw.yaml",
                directory / "store",
                cameras,
                site_id=site,
                metrics_port=port,
                storage={"segment_duration": "1s"},
            )
            daemons[site] = GatewayProcess(gw_config, directory).start()
            password = directory / "password"
            password.write_text(passwords[site] + "\n")
            password.chmod(0o640)
            configs[site] = _agent_config(directory, site, city, port, receiver.port, pki["ca"])
            agent = PrometheusProcess(
                directory,
                configs[site],
                "--enable-feature=agent",
                f"--storage.agent.path={directory / 'agent-data'}",
            )
            started.append(agent)
            agents[site] = agent
        for agent in agents.values():
            wait_until(lambda agent=agent: _ready(agent), 20, "an agent")  # type: ignore[misc]
        made = Fleet(receiver, context, auth, agents, configs, base / "centre", daemons)
        yield made
    finally:  # all at once: each daemon takes a few seconds to stop its workers
        for daemon in daemons.values():
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.terminate()
        for daemon in daemons.values():
            try:
                daemon.stop(15)
            except subprocess.TimeoutExpired:
                daemon.ensure_stopped()
        # the agents before the centre, which they flush to as they stop
        agents_started = started[1:]
        for process in agents_started:
            if process.proc.poll() is None:
                process.proc.terminate()
        for process in [*agents_started, *started[:1]]:
            process.stop()
        if made is not None:
            made.receiver.stop()  # a test may have restarted it


# -- the shipped files --------------------------------------------------------------------------


def test_shipped_agent_config_scrapes_the_box_locally_and_keeps_no_secret() -> None:
    config = yaml.safe_load(AGENT.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "camera-gateway"
    assert job["scrape_interval"] == "15s"
    (group,) = job["static_configs"]
    assert group["targets"] == ["127.0.0.1:9108"]
    assert set(group["labels"]) == {"instance", "site", "residence_city"}
    assert group["labels"]["instance"] == group["labels"]["site"]
    (remote,) = config["remote_write"]
    assert remote["url"].startswith("https://")
    assert remote["tls_config"]["ca_file"].startswith("/")
    assert set(remote["basic_auth"]) == {"username", "password_file"}
    assert remote["queue_config"]["max_shards"] <= 2
    result = promtool("check", "config", "--agent", AGENT.name, cwd=PROM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_uses_the_datasource_variable_and_filters_every_selector_by_site() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    site = variables["site"]
    assert (site["includeAll"], site["multi"], site["allValue"]) == (True, True, ".*")
    panels = dashboard["panels"]
    assert {panel["title"] for panel in panels} >= set(REQUIRED_PANELS)
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            for selector in re.findall(r"\{[^}]*\}", target["expr"]):
                assert 'site=~"$site"' in selector, (panel["title"], selector)
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert "secureJsonData" not in source and "password" not in source


MUTATIONS = {
    "a box pushing up == 0 taken for silent": (
        'unless on (job, instance) up{job="camera-gateway"}',
        'unless on (job, instance) up{job="camera-gateway"} == 1',
    ),
    "GatewaySilent without delay": ("for: 10m", "for: 0m"),
    "young boxes not spared": (
        "recording_timestamp_seconds[8d]))",
        "recording_timestamp_seconds[8d]) - 1e9)",
    ),
    "a box's own max_age ignored": (
        "camera_gateway_storage_max_age_seconds > 7 * 86400",
        "camera_gateway_storage_max_age_seconds > 0",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS.values(), ids=list(MUTATIONS))
def test_rule_unit_tests_catch_a_broken_fleet_rule(
    tmp_path: Path, mutation: tuple[str, str]
) -> None:
    old, new = mutation
    copy = tmp_path / "prometheus"
    shutil.copytree(PROM_DIR, copy)
    rules = copy / "camera-gateway.rules.yml"
    text = rules.read_text()
    assert text.count(old) == 1, old
    rules.write_text(text.replace(old, new))
    assert promtool("check", "rules", rules.name, cwd=copy).returncode == 0
    result = promtool("test", "rules", "camera-gateway.rules.test.yml", cwd=copy)
    assert result.returncode != 0, result.stdout
    assert "FAILED" in result.stdout + result.stderr


# -- the fleet at the centre --------------------------------------------------------------------


def test_generated_agent_and_receiver_configs_pass_promtool(fleet: Fleet) -> None:
    for config in fleet.agent_configs.values():
        result = promtool("check", "config", "--agent", str(config), cwd=config.parent)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr
    receiver = fleet.receiver_dir / "prometheus.yml"
    result = promtool("check", "config", str(receiver), cwd=fleet.receiver_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def _panel_queries() -> list[tuple[str, str]]:
    """(panel and refId, PromQL as Grafana sends it with every site selected)."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$__interval", "1m")
            expr = expr.replace("$site", ".*")
            assert "$" not in expr, expr
            queries.append((f"{panel['title']} ({target['refId']})", expr))
    return queries


def _sites_missing(fleet: Fleet) -> dict[str, set[str]]:
    missing = {name: SITES - fleet.sites(expr) for name, expr in _panel_queries()}
    return {name: sites for name, sites in missing.items() if sites}


def _values(fleet: Fleet, expr: str) -> dict[str, float]:
    return {sample["metric"]["site"]: float(sample["value"][1]) for sample in fleet.query(expr)}


def _metric_sum(text: str, name: str) -> float:
    pattern = re.compile(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def _agent_metrics(fleet: Fleet, site: str) -> str:
    url = f"http://127.0.0.1:{fleet.agents[site].port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def test_every_box_reaches_the_centre_under_its_own_instance_and_site(fleet: Fleet) -> None:
    up = 'up{job="camera-gateway"} == 1'
    wait_until(lambda: fleet.sites(up) >= SITES, 30, "every box's up == 1 at the centre")
    labels = {
        (sample["metric"]["instance"], sample["metric"]["site"], sample["metric"]["residence_city"])
        for sample in fleet.query('up{job="camera-gateway"}')
    }
    assert labels == {(site, site, city) for site, city, _ in BOXES}
    # the box's own site_id arrives as exported_site: GatewaySiteMismatch can compare them
    build = "camera_gateway_build_info"
    wait_until(lambda: fleet.sites(build) >= SITES, 20, "every box's build_info")
    for sample in fleet.query(build):
        assert sample["metric"]["exported_site"] == sample["metric"]["site"], sample
    # each agent pushed over HTTPS with its password file, and nothing was refused
    for site in fleet.agents:
        text = _agent_metrics(fleet, site)
        assert _metric_sum(text, "prometheus_remote_storage_samples_total") > 0, site
        assert _metric_sum(text, "prometheus_remote_storage_samples_failed_total") == 0, site


def test_every_dashboard_query_answers_for_every_site(fleet: Fleet) -> None:
    # the oldest recording needs a first segment, the tamper series a first analysis
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not _sites_missing(fleet), 60, "every panel to answer for every site")
    assert not _sites_missing(fleet), _sites_missing(fleet)
    cameras = {site: count for site, _, count in BOXES}
    configured = 'count by (site) (camera_gateway_camera_up{job="camera-gateway"})'
    assert _values(fleet, configured) == cameras
    up = 'sum by (site) (camera_gateway_camera_up{job="camera-gateway"})'
    wait_until(lambda: _values(fleet, up) == cameras, 30, "every camera up")
    (not_reporting,) = [expr for name, expr in _panel_queries() if name.startswith("Boxes not")]
    assert _values(fleet, not_reporting) == dict.fromkeys(SITES, 0.0)
    (depth,) = [expr for name, expr in _panel_queries() if name == "Storage depth (days) (A)"]
    assert all(0 < days < 1 / 24 for days in _values(fleet, depth).values())


def test_site_variable_lists_every_site(fleet: Fleet) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (site,) = [item for item in dashboard["templating"]["list"] if item["name"] == "site"]
    match = re.fullmatch(r"label_values\((.+), site\)", site["query"])
    assert match, site["query"]
    wait_until(lambda: fleet.sites(match[1]) >= SITES, 30, "every box's up")
    assert set(fleet.api("label/site/values", **{"match[]": match[1]})) == SITES


def test_rules_run_on_the_pushed_series_and_stay_silent_for_a_healthy_fleet(fleet: Fleet) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        rules = [rule for group in fleet.api("rules")["groups"] for rule in group["rules"]]
        done = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
        return rules if rules and done else None

    rules: list[dict[str, Any]] = wait_until(evaluated, 20, "the rules to be evaluated")
    shipped = yaml.safe_load((PROM_DIR / "camera-gateway.rules.yml").read_text())["groups"]
    assert {rule["name"] for rule in rules} == {
        rule["alert"] for group in shipped for rule in group["rules"]
    }
    assert all(rule["health"] == "ok" for rule in rules), [r for r in rules if r["health"] != "ok"]
    fleet_alerts = {"GatewayDown", "GatewaySilent", "GatewaySiteMismatch", "GatewayMetricsMissing"}
    fleet_alerts |= {"GatewayTargetsAbsent", "StorageDepthLow", "StorageError"}
    raised = {sample["metric"]["alertname"] for sample in fleet.query("ALERTS")}
    assert not raised & fleet_alerts, raised


def _scalar(fleet: Fleet, expr: str) -> float:
    (sample,) = fleet.query(expr)
    return float(sample["value"][1])


def test_a_box_of_six_cameras_costs_under_300_series(fleet: Fleet) -> None:
    def settled() -> dict[str, int] | None:  # every family there: analysis and compliance too
        families = ("camera_gateway_camera_tamper", "camera_gateway_camera_compliance_ok")
        if not all(fleet.sites(name) >= SITES for name in families):
            return None
        box = 'count({job="camera-gateway", site="%s"})'
        return {site: int(_scalar(fleet, box % site)) for site in SITES}

    wait_until(settled, 40, "every metric family of every box")
    time.sleep(3)
    counts = settled()
    assert counts
    # what each agent sends, from its own counter over 6 s
    sent = "prometheus_remote_storage_samples_total"
    before = {
        site: (time.monotonic(), _metric_sum(_agent_metrics(fleet, site), sent)) for site in SITES
    }
    time.sleep(6)
    rates = {}
    for site, (then, count) in before.items():
        now, total = time.monotonic(), _metric_sum(_agent_metrics(fleet, site), sent)
        rates[site] = (total - count) / (now - then)
    per_camera = (counts["res-0042"] - counts["res-0044"]) / 5
    print(f"\nseries per box: {counts}; per camera {per_camera:.1f}")
    print(f"samples/s sent at a 1 s scrape: {rates}; at 15 s: {counts['res-0042'] / 15:.1f}")
    assert counts["res-0042"] <= SERIES_BUDGET, counts
    # every series of every scrape is sent (a 1 s scrape: one sample a second per series)
    for site in SITES:
        assert 0.8 * counts[site] <= rates[site] <= 1.15 * counts[site], (site, rates, counts)


def test_an_outage_of_the_centre_loses_no_sample(fleet: Fleet) -> None:
    up = 'up{job="camera-gateway"}'
    wait_until(lambda: fleet.sites(up) >= SITES, 30, "every box's up")
    stopped = time.time()
    fleet.receiver.stop()  # down for 8 s: the agents keep what they scrape meanwhile
    time.sleep(8)
    fleet.receiver = fleet.receiver.restarted()
    wait_until(lambda: _ready(fleet.receiver, (fleet.context, fleet.auth)), 30, "the centre back")
    back = time.time()
    span = int(back - stopped)
    # Once the agents' retries get through, every scrape of the outage is there: one a second.
    window = f"count_over_time({up}[{span}s])"

    def counts() -> dict[str, float]:
        answer = fleet.api("query", query=window, time=str(back))["result"]
        return {sample["metric"]["site"]: float(sample["value"][1]) for sample in answer}

    def complete() -> bool:
        found = counts()  # every site, each with every scrape (a site not there yet is waited for)
        return found.keys() == SITES and min(found.values()) >= span - 1

    with contextlib.suppress(AssertionError):
        wait_until(complete, 90, "the outage's data")
    logs = [
        line
        for agent in fleet.agents.values()
        for line in agent.log_path.read_text().splitlines()
        if "level=warn" in line or "level=error" in line
    ]
    assert counts().keys() == SITES, (span, counts(), logs[-12:])
    assert min(counts().values()) >= span - 1, (span, counts(), logs[-12:])


def _rule(name: str) -> str:
    groups = yaml.safe_load((PROM_DIR / "camera-gateway.rules.yml").read_text())["groups"]
    (expr,) = [
        rule["expr"] for group in groups for rule in group["rules"] if rule.get("alert") == name
    ]
    return str(expr)


def test_a_box_offline_is_told_down_then_silent_by_its_alerts_and_the_dashboard(
    fleet: Fleet,
) -> None:
    # Last in the file: it stops box res-0044. Its daemon first: the agent pushes up == 0.
    site = "res-0044"
    down, silent = _rule("GatewayDown"), _rule("GatewaySilent")
    fleet.daemons[site].stop()
    wait_until(lambda: fleet.sites(down) == {site}, 20, "up == 0 of the stopped daemon")
    assert fleet.sites(silent) == set()
    # Then its agent: nothing more arrives. A remote-written series goes absent 5 minutes after
    # its last sample, so the rules are evaluated 5 minutes ahead, when the boxes still pushing
    # have samples younger than that and the stopped one has not.
    fleet.agents[site].stop()
    time.sleep(8)
    ahead = str(time.time() + 300 - 4)
    at = {"time": ahead}
    assert {s["metric"]["site"] for s in fleet.api("query", query=silent, **at)["result"]} == {site}
    assert fleet.api("query", query=down, **at)["result"] == []
    (not_reporting,) = [expr for name, expr in _panel_queries() if name.startswith("Boxes not")]
    answer = fleet.api("query", query=not_reporting, **at)["result"]
    values = {sample["metric"]["site"]: float(sample["value"][1]) for sample in answer}
    assert values == {**dict.fromkeys(SITES, 0.0), site: 1.0}
