//! A plugin whose `manifest()` never returns (host/tests/sandbox.rs): listing or scanning a
//! plugin directory that holds it must still finish, with this file reported as unusable.

use opshost_procedures::ctx::failed;
use opshost_procedures::{Context, Error, Manifest, Plan};

struct NeverAnswers;

impl opshost_procedures::bindings::Guest for NeverAnswers {
    fn manifest() -> Manifest {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    fn plan(_ctx: Context) -> Result<Plan, Error> {
        Err(failed("never reached"))
    }
    fn upgrade(_ctx: Context) -> Result<(), Error> {
        Err(failed("never reached"))
    }
    fn rollback(_ctx: Context) -> Result<(), Error> {
        Err(failed("never reached"))
    }
}

opshost_procedures::bindings::export_plugin!(NeverAnswers);
