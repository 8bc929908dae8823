//! The DynamoDB operations, one module per family; each adds methods to the service.

mod batch;
mod items;
mod read;
mod tables;
