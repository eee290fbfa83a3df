//! Random operations against a model of what the engine should hold.

use super::*;

/// Random operation sequences against the engine and against a plain map
/// model; every answer must agree. Deterministic (seeded), so a failure
/// reproduces; the fuzz targets of the security work go wider.
#[test]
fn engine_agrees_with_a_model_on_random_operations() {
    use std::collections::{BTreeMap, HashMap};

    #[derive(Clone)]
    struct M {
        data: Bytes,
        vars: BTreeMap<Bytes, Bytes>,
        timeout: u64,
        accessed: u64,
    }

    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for round in 0..20 {
        let f = fixture();
        let mut model: HashMap<String, M> = HashMap::new();
        for step in 0..400 {
            let now = f.engine.now_ms();
            model.retain(|_, m| m.accessed + m.timeout > now);
            let id = format!("s{}", rnd(8));
            let name = b(["a", "b", "c"][rnd(3) as usize]);
            let value = b(&rnd(4).to_string());
            let ctx = format!("round {round} step {step}");
            match rnd(11) {
                0 => {
                    let timeout = 1_000 * (1 + rnd(5));
                    let r = f.run(Command::Create {
                        id: sid(&id),
                        class: None,
                        data: None,
                        timeout_ms: Some(timeout),
                    });
                    match model.get(&id) {
                        Some(_) => assert_eq!(r, Err(Error::Exists(sid(&id))), "{ctx}"),
                        None => {
                            assert_eq!(r, Ok(Reply::Ok), "{ctx}");
                            model.insert(
                                id,
                                M {
                                    data: Bytes::new(),
                                    vars: BTreeMap::new(),
                                    timeout,
                                    accessed: now,
                                },
                            );
                        }
                    }
                }
                1 => {
                    let r = f.run(Command::Destroy { id: sid(&id) });
                    assert_eq!(r.is_ok(), model.remove(&id).is_some(), "{ctx}");
                }
                2 | 3 => {
                    let r = f.run(Command::Set {
                        id: sid(&id),
                        name: name.clone(),
                        value: value.clone(),
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            assert_eq!(r, Ok(Reply::Ok), "{ctx}");
                            m.vars.insert(name, value);
                            m.accessed = now;
                        }
                        None => assert_eq!(r, Err(Error::NoSession(sid(&id))), "{ctx}"),
                    }
                }
                4 => {
                    let r = f.run(Command::Del {
                        id: sid(&id),
                        name: name.clone(),
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            m.accessed = now;
                            let had = m.vars.remove(&name).is_some();
                            assert_eq!(r, Ok(Reply::Int(i64::from(had))), "{ctx}");
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                5 => {
                    let r = f.run(Command::SetData {
                        id: sid(&id),
                        data: value.clone(),
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            assert_eq!(r, Ok(Reply::Ok), "{ctx}");
                            m.data = value;
                            m.accessed = now;
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                6 => {
                    let r = f.run(Command::GetAll { id: sid(&id) });
                    match model.get_mut(&id) {
                        Some(m) => {
                            m.accessed = now;
                            assert_eq!(r, Ok(data::vars_reply(&m.vars)), "{ctx}");
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                7 => {
                    let r = f.run(Command::GetData {
                        id: sid(&id),
                        touch: true,
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            m.accessed = now;
                            assert_eq!(r, Ok(Reply::Bulk(m.data.clone())), "{ctx}");
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                8 => {
                    let mut got = strs(
                        f.run(Command::Find {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .unwrap(),
                    );
                    got.sort();
                    let mut want: Vec<String> = model
                        .iter()
                        .filter(|(_, m)| m.vars.get(&name) == Some(&value))
                        .map(|(k, _)| k.clone())
                        .collect();
                    want.sort();
                    assert_eq!(got, want, "{ctx}");
                    assert_eq!(
                        f.run(Command::Count { class: None }),
                        Ok(Reply::Int(model.len() as i64)),
                        "{ctx}"
                    );
                }
                9 => {
                    let to = format!("s{}", rnd(8));
                    let r = f.run(Command::Regenerate {
                        id: sid(&id),
                        new_id: Some(sid(&to)),
                    });
                    if !model.contains_key(&id) {
                        assert_eq!(r, Err(Error::NoSession(sid(&id))), "{ctx}");
                    } else if model.contains_key(&to) {
                        assert_eq!(r, Err(Error::Exists(sid(&to))), "{ctx}");
                    } else {
                        assert_eq!(r, Ok(Reply::Bulk(b(&to))), "{ctx}");
                        let mut m = model.remove(&id).unwrap();
                        m.accessed = now;
                        model.insert(to, m);
                    }
                }
                _ => {
                    f.clock.advance(rnd(1_500));
                    f.engine.tick();
                }
            }
        }
    }
}
