"""MQTT: topic names and the paho-mqtt adapter."""
