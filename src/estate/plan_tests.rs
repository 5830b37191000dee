use super::*;
use vault_format::estate::{BrokerConfigs, QuotaValue, ScramUser, permission};

fn acl(name: &str, pattern: u8) -> AclEntry {
    AclEntry {
        resource_type: resource_type::TOPIC,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: "User:app".into(),
        host: "*".into(),
        operation: 3,
        permission: permission::ALLOW,
    }
}

fn quota(user: &str, rate: f64) -> QuotaEntry {
    QuotaEntry {
        entity: vec![("user".into(), Some(user.into()))],
        values: vec![("producer_byte_rate".into(), QuotaValue(rate))],
    }
}

fn estate(acls: Vec<AclEntry>, quotas: Vec<QuotaEntry>, users: Vec<ScramUser>) -> ClusterEstate {
    ClusterEstate {
        acls: Part::Read(acls),
        quotas: Part::Read(quotas),
        scram_users: Part::Read(users),
        broker_configs: Part::Read(vec![]),
    }
}

fn user(name: &str) -> ScramUser {
    ScramUser {
        name: name.into(),
        credentials: vec![(2, 4096)],
    }
}

const ALL: EstateParts = EstateParts {
    acls: true,
    quotas: true,
    users: true,
    configs: true,
};

fn plan(
    snapshot: &ClusterEstate,
    target: &ClusterEstate,
    renames: &[(&str, &str)],
    passwords: &[(&str, &str)],
) -> EstatePlan {
    let renames = renames
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let passwords = passwords
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    EstatePlan::make(
        Some(snapshot),
        &EstateInputs {
            parts: ALL,
            renames: &renames,
            passwords: &passwords,
            target,
            own_requests: None,
        },
    )
}

#[test]
fn a_literal_topic_acl_follows_the_rename_and_a_prefixed_one_is_reported() {
    let s = estate(
        vec![
            acl("orders", pattern_type::LITERAL),
            acl("ord", pattern_type::PREFIXED),
        ],
        vec![],
        vec![],
    );
    let p = plan(
        &s,
        &estate(vec![], vec![], vec![]),
        &[("orders", "orders-dr")],
        &[],
    );
    assert_eq!(p.create_acls[0].resource_name, "orders-dr");
    assert_eq!(
        p.create_acls[1].resource_name, "ord",
        "prefixed ACLs stay as they are"
    );
    assert!(
        p.not_restored
            .iter()
            .any(|n| n.contains("prefixed") && n.contains("orders=orders-dr")),
        "{:?}",
        p.not_restored
    );
    assert!(p.conflicts.is_empty());
}

#[test]
fn what_the_target_has_already_is_left_and_a_different_quota_is_a_conflict() {
    let s = estate(
        vec![acl("t", pattern_type::LITERAL)],
        vec![quota("a", 10.0), quota("b", 20.0)],
        vec![],
    );
    let target = estate(
        vec![acl("t", pattern_type::LITERAL)],
        vec![quota("a", 10.0), quota("b", 99.0)],
        vec![],
    );
    let p = plan(&s, &target, &[], &[]);
    assert!(p.create_acls.is_empty());
    assert_eq!(p.already_there.len(), 2, "{:?}", p.already_there);
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert!(
        p.conflicts[0].contains("user=b") && p.conflicts[0].contains("99"),
        "{}",
        p.conflicts[0]
    );
}

#[test]
fn a_user_without_a_password_is_reported_and_one_on_the_target_is_a_conflict() {
    let s = estate(
        vec![],
        vec![],
        vec![user("alice"), user("bob"), user("carol")],
    );
    let target = estate(vec![], vec![], vec![user("bob")]);
    let p = plan(&s, &target, &[], &[("bob", "pw-b"), ("carol", "pw-c")]);
    assert!(
        p.not_restored
            .iter()
            .any(|n| n.contains("alice") && n.contains("no password"))
    );
    assert!(
        !p.upsert_users.iter().any(|u| u.user == "alice"),
        "never a made-up password"
    );
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert!(p.conflicts[0].contains("bob"));
    let carol = p.upsert_users.iter().find(|u| u.user == "carol").unwrap();
    assert_eq!(
        (carol.mechanism, carol.iterations, carol.password.as_str()),
        (2, 4096, "pw-c")
    );
}

#[test]
fn a_part_not_read_restores_nothing_and_says_why() {
    let mut s = estate(vec![], vec![], vec![]);
    s.acls = Part::NotRead("not authorized".into());
    let p = plan(&s, &estate(vec![], vec![], vec![]), &[], &[]);
    assert!(p.create_acls.is_empty());
    assert!(
        p.not_restored
            .iter()
            .any(|n| n.starts_with("ACLs: not read") && n.contains("not authorized"))
    );

    let none = EstatePlan::make(
        None,
        &EstateInputs {
            parts: ALL,
            renames: &BTreeMap::new(),
            passwords: &BTreeMap::new(),
            target: &s,
            own_requests: None,
        },
    );
    assert!(none.changes().is_empty());
    assert!(none.not_restored[0].contains("before vault recorded"));
}

#[test]
fn quotas_on_a_target_vault_cannot_read_are_a_conflict() {
    let s = estate(vec![], vec![quota("a", 1.0)], vec![]);
    let mut target = estate(vec![], vec![], vec![]);
    target.quotas = Part::NotRead("SASL_SSL".into());
    let p = plan(&s, &target, &[], &[]);
    assert_eq!(p.conflicts.len(), 1);
    assert!(p.conflicts[0].contains("could not be read"));
}

fn configs(default: &[(&str, Option<&str>)], broker: &[(&str, &str)]) -> Part<BrokerConfigs> {
    let e = |v: &[(&str, Option<&str>)]| {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    };
    Part::Read(vec![
        BrokerConfigs {
            broker: None,
            entries: e(default),
        },
        BrokerConfigs {
            broker: Some(1),
            entries: broker
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        },
    ])
}

#[test]
fn cluster_configs_are_set_compared_and_broker_ones_reported() {
    let mut s = estate(vec![], vec![], vec![]);
    s.broker_configs = configs(
        &[
            ("log.retention.ms", Some("1000")),
            ("log.cleaner.threads", Some("2")),
            ("sasl.x.password", None),
            ("num.io.threads", Some("8")),
        ],
        &[("log.cleaner.backoff.ms", "10")],
    );
    let mut t = estate(vec![], vec![], vec![]);
    t.broker_configs = configs(
        &[
            ("log.cleaner.threads", Some("2")),
            ("num.io.threads", Some("4")),
        ],
        &[],
    );
    let p = plan(&s, &t, &[], &[]);
    assert_eq!(
        p.set_configs,
        vec![
            ("log.retention.ms".to_string(), "1000".to_string()),
            ("num.io.threads".into(), "8".into())
        ]
    );
    assert!(
        p.already_there
            .iter()
            .any(|a| a.contains("log.cleaner.threads=2"))
    );
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert!(p.conflicts[0].contains("num.io.threads is 4 on the target, 8 in the snapshot"));
    assert!(p.not_restored.iter().any(|n| n.contains("sensitive")));
    assert!(
        p.not_restored
            .iter()
            .any(|n| n.contains("broker 1's own configs (log.cleaner.backoff.ms)"))
    );
}

#[test]
fn acls_for_a_target_whose_acls_cannot_be_read_are_a_conflict() {
    let s = estate(vec![acl("t", pattern_type::LITERAL)], vec![], vec![]);
    let mut target = estate(vec![], vec![], vec![]);
    target.acls = Part::NotRead("the cluster has no authorizer".into());
    let p = plan(&s, &target, &[], &[]);
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert!(p.conflicts[0].contains("no authorizer"));
    let none = plan(&estate(vec![], vec![], vec![]), &target, &[], &[]);
    assert!(none.conflicts.is_empty(), "no ACLs to create, no conflict");
}
