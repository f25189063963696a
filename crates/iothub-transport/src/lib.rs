//! Byte-stream helpers shared by the iothub-rs AMQP clients (`iothub-c2d`, `iothub-events`)
//! and the local hub (`iothub-emulator`). Nothing here knows IoT Hub or AMQP: the helpers
//! wrap any tokio byte stream.
//!
//! - [`BatchedWrites`]: writes handed to a writer task, which writes what accumulated
//!   meanwhile with one write and one flush. AMQP stacks flush after every frame; under load
//!   this puts many frames into one TLS record and one system call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//!
//! let (near, mut far) = tokio::io::duplex(1024);
//! let mut stream = iothub_transport::BatchedWrites::new(near);
//! stream.write_all(b"frame 1").await?;
//! stream.flush().await?; // handed over: the writer task writes it
//! stream.write_all(b", frame 2").await?;
//! stream.shutdown().await?; // waits until both went out
//! let mut got = String::new();
//! far.read_to_string(&mut got).await?;
//! assert_eq!(got, "frame 1, frame 2");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod batched_writes;

pub use batched_writes::BatchedWrites;
