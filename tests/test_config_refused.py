"""A config error makes Envoy refuse the configuration, with one log line
naming the bad field — never a filter that runs with part of its policy."""

import json
import secrets
import subprocess

import pytest
import yaml

from harness import envoy_binary, envoy_config, free_port, plugin_configuration, provider_keys


@pytest.mark.parametrize("mutate,path", [
    (lambda p: p["rules"][0].update(models=["gpt-4o", ""]), "rules[0].models[1]"),
    (lambda p: p["providers"][0].update(credential={"type": "api_key", "env": "NO_SUCH_VARIABLE"}), "providers[0].credential.env"),
    (lambda p: p["identity"].update(require="x509"), "identity.require"),
    (lambda p: p["identity"].update(x509_svid={"source": "xfcc"}), "identity.x509_svid.trusted_hop"),
    (lambda p: p.update(modes="audit"), "unknown field `modes`"),
])
def test_envoy_refuses_a_bad_policy(tmp_path, mutate, path):
    config = envoy_config(free_port(), free_port(), free_port(), tmp_path / "audit.log")
    value = plugin_configuration(config)
    policy = json.loads(value["value"])
    mutate(policy)
    value["value"] = json.dumps(policy)
    (tmp_path / "envoy.yaml").write_text(yaml.safe_dump(config))
    env = {**provider_keys(), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(envoy_binary()), "-c", str(tmp_path / "envoy.yaml"), "--base-id", str(secrets.randbelow(1 << 20) + 2000)],
                            env=env, capture_output=True, text=True, timeout=60)
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-3000:]
    assert "modelgate config: " in log and path in log, log[-3000:]
