//! Test registration for libtest-mimic: each facility module lists its tests
//! with `trials!`, and a test that cannot run here is reported as ignored with
//! its reason (in CI, as a failure), never as passed.

use std::panic::{catch_unwind, AssertUnwindSafe};

use libtest_mimic::{Completion, Failed, Trial};

use super::env::{in_ci, Env, Needs};

/// The panic payload of `skip`: the trial runner turns it into "ignored".
struct Skip(String);

/// Ends the running test as ignored, with the reason: for a test that finds,
/// after it started, that this machine cannot show what it checks (no pty, a
/// host that refuses the call itself). In CI it is a failure instead.
pub fn skip(reason: &str) -> ! {
    if in_ci() {
        panic!("cannot run in CI: {reason}");
    }
    std::panic::panic_any(Skip(reason.to_string()))
}

/// Keeps the default panic message for failures and says nothing for `skip`,
/// whose reason the runner prints on the test's own line.
pub fn quiet_skips() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<Skip>().is_none() {
            default(info);
        }
    }));
}

/// One test: `module` is `module_path!()` of the facility module, so the name
/// reads `network::a_full_subnet_is_a_clear_error`.
pub fn trial(module: &str, name: &str, needs: Needs, test: fn(&Env)) -> Trial {
    let module = module.split_once("::").map_or(module, |(_, m)| m);
    Trial::ignorable_test(format!("{module}::{name}"), move || run(needs, test))
}

fn run(needs: Needs, test: fn(&Env)) -> Result<Completion, Failed> {
    let env = match needs.env() {
        Ok(env) => env,
        Err(why) if in_ci() => return Err(format!("cannot run in CI: {why}").into()),
        Err(why) => return Ok(Completion::ignored_with(why)),
    };
    match catch_unwind(AssertUnwindSafe(|| test(&env))) {
        Ok(()) => Ok(Completion::Completed),
        Err(payload) => {
            if let Some(Skip(why)) = payload.downcast_ref::<Skip>() {
                return Ok(Completion::ignored_with(why));
            }
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the test panicked".into());
            Err(msg.into())
        }
    }
}

/// `trials![Image: [test_a, test_b], Bin: [test_c]]`: the module's tests, each a
/// `fn(&Env)` of that name, grouped by what they need.
#[macro_export]
macro_rules! trials {
    ($($needs:ident: [$($test:ident),* $(,)?]),* $(,)?) => {
        vec![$($(
            $crate::harness::trial(
                module_path!(),
                stringify!($test),
                $crate::harness::Needs::$needs,
                $test,
            )
        ),*),*]
    };
}
