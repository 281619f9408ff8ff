//! The default hostname: a random `adjective-noun`, so sandboxes are told apart
//! in logs without leaking anything about the host.

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brave", "brisk", "calm", "clever", "cosmic", "crisp", "dapper", "eager",
    "fancy", "gentle", "happy", "hidden", "jolly", "keen", "lively", "lucky", "mellow", "misty",
    "nimble", "noble", "plucky", "quiet", "rapid", "rustic", "shiny", "silent", "snowy", "sunny",
    "swift", "tidy", "vivid", "witty", "young", "zesty",
];

const NOUNS: &[&str] = &[
    "badger", "beacon", "bison", "canyon", "comet", "coral", "falcon", "fjord", "gecko", "glacier",
    "harbor", "heron", "island", "lagoon", "lantern", "lynx", "meadow", "meteor", "otter", "panda",
    "pebble", "pine", "quartz", "raven", "river", "sparrow", "summit", "tiger", "tundra", "valley",
    "walrus", "willow", "yak", "zebra", "orchid", "maple",
];

/// `adjective-noun` chosen with bytes from getrandom (a fixed name if the
/// kernel has no entropy to give, which never blocks start-up).
pub fn random_hostname() -> String {
    let mut bytes = [0u8; 4];
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::NONBLOCK);
    let a = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
    let n = usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
    format!(
        "{}-{}",
        ADJECTIVES[a % ADJECTIVES.len()],
        NOUNS[n % NOUNS.len()]
    )
}

/// A sandbox id: 16 hex digits, for cgroup and lock-file names.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::NONBLOCK);
    // Entropy-less kernels still get distinct ids from the pid.
    let mixed = u64::from_le_bytes(bytes)
        ^ u64::from(
            rustix::process::getpid()
                .as_raw_nonzero()
                .get()
                .unsigned_abs(),
        );
    format!("{mixed:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_adjective_dash_noun() {
        for _ in 0..50 {
            let name = random_hostname();
            let (adj, noun) = name.split_once('-').expect("dash");
            assert!(ADJECTIVES.contains(&adj) && NOUNS.contains(&noun), "{name}");
        }
    }
}
