//! Any bytes as a configuration: a config error or a policy, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let env = |name: &str| (name.len() % 3 != 0).then(|| "sk-fuzz".to_string());
    let _ = modelgate_policies::Policy::from_json(data, &env);
});
