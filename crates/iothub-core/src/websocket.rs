//! IoT Hub's WebSocket transports on port 443: AMQP and MQTT over WebSockets share one path
//! and are told apart by the WebSocket sub-protocol (IoT Hub's "Communicate with your IoT hub
//! using the AMQP Protocol" and "… MQTT protocol" pages).

/// The path of IoT Hub's WebSocket endpoint.
pub const PATH: &str = "/$iothub/websocket";

/// The WebSocket sub-protocol of AMQP.
pub const AMQP_SUB_PROTOCOL: &str = "AMQPWSB10";

/// The WebSocket sub-protocol of MQTT.
pub const MQTT_SUB_PROTOCOL: &str = "mqtt";
