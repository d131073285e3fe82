//! Reading magnum.conf: sections, types, defaults, and what upstream refuses.

use super::*;

fn parse(text: &str) -> Config {
    Config::parse(text, "/etc/magnum/magnum.conf").unwrap()
}

#[test]
fn defaults_apply() {
    let c = Config::defaults();
    assert_eq!(c.int("api", "port"), Some(9511));
    assert_eq!(c.str("api", "host").as_deref(), Some("127.0.0.1"));
    assert_eq!(c.int("api", "max_limit"), Some(1000));
    assert!(!c.bool("api", "enabled_ssl"));
    assert_eq!(
        c.list("cluster_template", "kubernetes_allowed_network_drivers"),
        ["flannel", "calico"]
    );
    assert!(c.list("drivers", "disabled_drivers").is_empty());
    assert_eq!(
        c.str("conductor", "topic").as_deref(),
        Some("magnum-conductor")
    );
    assert!(c.secret("database", "connection").is_none());
}

#[test]
fn oslo_ini_dialect() {
    let c = parse(
        "# comment\n; also\n[DEFAULT]\nhost = node1\n\n[API]\nport: 9999\nhost = \"0.0.0.0\"\n\
         [drivers]\ndisabled_drivers = a,\n  b ,c\n[oslo_messaging_notifications]\n\
         driver = log\ndriver = messagingv2\n[api]\nport = 9000\n",
    );
    assert_eq!(c.str("DEFAULT", "host").as_deref(), Some("node1"));
    assert_eq!(
        c.int("api", "port"),
        Some(9000),
        "the last value wins; sections are case-insensitive"
    );
    assert_eq!(
        c.str("api", "host").as_deref(),
        Some("0.0.0.0"),
        "quotes are stripped"
    );
    assert_eq!(
        c.list("drivers", "disabled_drivers"),
        ["a", "b", "c"],
        "continuation lines"
    );
    assert_eq!(
        c.multi("oslo_messaging_notifications", "driver"),
        ["log", "messagingv2"]
    );
    assert!(c.is_set("api", "port"));
    assert!(!c.is_set("api", "workers"));
}

#[test]
fn deprecated_names_and_interpolation() {
    let c = parse("[DEFAULT]\nsql_connection = sqlite:////tmp/x.db\nstate_path = /srv/magnum\n[certificates]\nstorage_path = $state_path/certs\n[cluster]\ntemp_cache_dir = ${DEFAULT.state_path}/cache\n[DEFAULT]\ndata_dir = a$$b\n");
    assert_eq!(
        c.secret("database", "connection").unwrap().expose(),
        "sqlite:////tmp/x.db"
    );
    assert_eq!(
        c.str("certificates", "storage_path").as_deref(),
        Some("/srv/magnum/certs")
    );
    assert_eq!(
        c.str("cluster", "temp_cache_dir").as_deref(),
        Some("/srv/magnum/cache")
    );
    assert_eq!(c.str("DEFAULT", "data_dir").as_deref(), Some("a$b"));
    assert_eq!(
        Config::defaults().str("DEFAULT", "bindir").as_deref(),
        Some("/usr/lib/magnum/bin")
    );
}

#[test]
fn bad_values_name_section_key_and_file() {
    for (text, needle) in [
        (
            "[api]\nport = eleven\n",
            "[api] port in /etc/magnum/magnum.conf",
        ),
        ("[api]\nport = 70000\n", "port number"),
        ("[api]\nenabled_ssl = maybe\n", "boolean"),
        ("[api]\nhost = not an ip\n", "IP address"),
        ("[api]\nmax_limit = 1.5\n", "integer"),
        ("[api]\nworkers = 0\n", "at least 1"),
        ("[DEFAULT]\nhost = bad_host!\n", "host address"),
    ] {
        let e = Config::parse(text, "/etc/magnum/magnum.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
    let e = Config::parse("[api]\n  port = 1\n", "f")
        .unwrap_err()
        .to_string();
    assert!(e.contains("f:2"), "{e}");
    assert!(Config::parse("port = 1\n", "f").is_err());
    assert!(Config::parse("[api]\njunk\n", "f").is_err());
}

#[test]
fn secrets_never_print() {
    let e = Config::parse("[database]\nconnection = mysql://u:$hunter2@h/db\n[keystone_authtoken]\npassword = hunter2\n", "f").unwrap();
    let s = e.secret("keystone_authtoken", "password").unwrap();
    assert_eq!(format!("{s} {s:?}"), "**** ****");
    let dbg = format!("{:?}", e.secret("database", "connection"));
    assert!(!dbg.contains("hunter2"));
    let mut c = Config::defaults();
    let err = c
        .set("database", "max_pool_size", "many")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[database] max_pool_size"), "{err}");
}

#[test]
fn unknown_options_warn() {
    let c = parse("[api]\nhots = x\nport = 1\n[frobnicate]\na = 1\nb = 2\n");
    assert_eq!(c.warnings().len(), 2, "{:?}", c.warnings());
    assert!(c.warnings()[0].contains("[api] hots"));
    assert!(c.warnings()[1].contains("[frobnicate]"));
    assert_eq!(c.int("api", "port"), Some(1));
}

#[test]
fn files_and_directories_in_order() {
    let dir = std::env::temp_dir().join(format!("magnum-conf-{}", std::process::id()));
    let d = dir.join("magnum.conf.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(dir.join("a.conf"), "[api]\nport = 1\nmax_limit = 5\n").unwrap();
    std::fs::write(dir.join("b.conf"), "[api]\nport = 2\n").unwrap();
    std::fs::write(d.join("20-x.conf"), "[api]\nport = 4\n").unwrap();
    std::fs::write(d.join("10-x.conf"), "[api]\nport = 3\nmax_limit = 6\n").unwrap();
    std::fs::write(d.join("ignored.txt"), "[api]\nport = 9\n").unwrap();
    let c = Config::load(
        &[dir.join("a.conf"), dir.join("b.conf")],
        std::slice::from_ref(&d),
    )
    .unwrap();
    assert_eq!(c.int("api", "port"), Some(4));
    assert_eq!(c.int("api", "max_limit"), Some(6));
    assert_eq!(c.files().len(), 4);
    assert!(matches!(
        Config::load(&[dir.join("none.conf")], &[]),
        Err(ConfigError::MissingFile(_))
    ));
    assert!(matches!(
        Config::load(&[], &[dir.join("nodir")]),
        Err(ConfigError::MissingDir(_))
    ));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn registry_is_consistent() {
    for (i, o) in OPTIONS.iter().enumerate() {
        assert!(
            !OPTIONS[..i]
                .iter()
                .any(|p| p.section == o.section && p.name == o.name),
            "[{}] {} declared twice",
            o.section,
            o.name
        );
        if let Some(d) = o.default {
            let expanded = Config::defaults().interpolate(o.section, d);
            assert!(
                check(&o.ty, &expanded) || d.is_empty(),
                "[{}] {} default {d:?}",
                o.section,
                o.name
            );
        }
    }
    // Upstream's options as measured (a copy of shared/spec/upstream-config-options.tsv).
    let spec = include_str!("upstream-options.tsv");
    for line in spec.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let name = cols[1].replace('-', "_");
        assert!(
            find(cols[0], &name).is_some(),
            "upstream option [{}] {} missing",
            cols[0],
            name
        );
    }
}

#[test]
fn sample_is_up_to_date() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../magnum.conf.sample"
    ));
    if std::env::var_os("MAGNUM_REGENERATE_SAMPLE").is_some() {
        std::fs::write(&path, sample()).unwrap();
    }
    assert!(
        sample_is_current(&path),
        "magnum.conf.sample is stale: run `MAGNUM_REGENERATE_SAMPLE=1 cargo test -p magnum-core sample`"
    );
    assert!(sample().contains("#port = 9511"));
}
