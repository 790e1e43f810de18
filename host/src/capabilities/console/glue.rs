//! The console capability's WIT glue: each `opshost:plugin/console` function as one line through
//! the host-call path ([`crate::runtime::host_call`]) with its grant and journal arguments.

use serde_json::json;

use super::Server;
use crate::bindings::opshost::plugin::console as wit;
use crate::bindings::Error;
use crate::runtime::calls;
use crate::runtime::state::HostState;

impl wit::Host for HostState {
    async fn get_parameter(&mut self, name: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        let c = self.env.caps.console.clone();
        self.call(calls::CONSOLE_GET_PARAMETER, name.clone(), json!({"name": name}), async move { c.get_parameter(&name).await }).await
    }
    async fn set_parameter(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), Error>> {
        let c = self.env.caps.console.clone();
        self.call(calls::CONSOLE_SET_PARAMETER, name.clone(), json!({"name": name, "value": value}), async move { c.set_parameter(&name, &value).await }).await
    }
    async fn list_servers(&mut self) -> wasmtime::Result<Result<Vec<Server>, Error>> {
        let c = self.env.caps.console.clone();
        self.call(calls::CONSOLE_LIST_SERVERS, (), json!({}), async move { c.list_servers().await }).await
    }
    async fn health(&mut self, node: String) -> wasmtime::Result<Result<bool, Error>> {
        let c = self.env.caps.console.clone();
        self.call(calls::CONSOLE_HEALTH, (), json!({"node": node}), async move { c.health(&node).await }).await
    }
}
