//! The official Python service SDK (`azure-iot-hub`, unmodified) against the emulator.
//! Each test runs one scenario file of `tests/python` against its own emulator.

use iothub_conformance::python_scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_devices() {
    python_scenario("devices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_modules() {
    python_scenario("modules").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_twins() {
    python_scenario("twins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_query() {
    python_scenario("query").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_bulk() {
    python_scenario("bulk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_methods() {
    python_scenario("methods").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_configurations_and_edge() {
    python_scenario("configurations").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_access() {
    python_scenario("access").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_c2d() {
    python_scenario("c2d").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_event_hubs_reads_the_built_in_endpoint() {
    python_scenario("eventhub").await;
}

/// `IoTHubJobManager`: import/export jobs through Azurite, scheduled twin jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_jobs() {
    iothub_conformance::python_scenario_with("jobs", true).await;
}
