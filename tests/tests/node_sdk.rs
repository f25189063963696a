//! The official Node service SDK (`azure-iothub` Registry and Client, unmodified) against the emulator.
//! Each test runs one scenario file of `tests/node` against its own emulator.

use iothub_conformance::node_scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_devices() {
    node_scenario("devices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_twins_and_query() {
    node_scenario("twins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_bulk() {
    node_scenario("bulk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_configurations_and_edge() {
    node_scenario("configurations").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_c2d_amqp_and_amqp_ws() {
    node_scenario("c2d").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_event_hubs_reads_the_built_in_endpoint() {
    node_scenario("eventhub").await;
}

/// `JobClient` (scheduled twin and method jobs) and `Registry` import/export through Azurite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_jobs() {
    iothub_conformance::node_scenario_with("jobs", true).await;
}
