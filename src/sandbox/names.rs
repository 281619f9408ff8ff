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

/// A sandbox id: 16 hex digits, for cgroup, lock-file, table and veth names.
/// The low 32 bits are the pid, so the ids of live sandboxes never collide (and
/// neither do their veths, named from the low 48 bits); the high 32 bits are
/// random, or the clock's nanoseconds on a kernel with no entropy yet (a VM at
/// boot), so an id is not reused soon after its run is gone.
pub fn random_id() -> String {
    let mut bytes = [0u8; 4];
    let random = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::NONBLOCK)
        .is_ok_and(|n| n == bytes.len());
    let high = if random {
        u32::from_le_bytes(bytes)
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Nanoseconds vary fastest; the seconds' low bits tell runs a second apart.
        let secs = now.as_secs().to_le_bytes();
        now.subsec_nanos()
            ^ u32::from_le_bytes([secs[0], secs[1], secs[2], secs[3]]).rotate_left(30)
    };
    let pid = rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs();
    format!("{high:08x}{pid:08x}")
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

    #[test]
    fn id_is_16_hex_digits_ending_in_the_pid() {
        let id = random_id();
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(
            u32::from_str_radix(&id[8..], 16).expect("hex"),
            std::process::id(),
            "{id}"
        );
    }
}
