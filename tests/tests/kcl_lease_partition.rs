//! A worker cut off from its lease table (a network partition: the connection stays open and
//! nothing comes back) while it can still read the stream. Its renewals hang; it must stop
//! processing the shard once its lease expires on its own clock, since another worker may own
//! the shard by then, and tell its processor so.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kcl_integration_tests::kcl::{
    fast_builder, lease_store, put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay to `target` that can black-hole: once partitioned, bytes in either direction are
/// swallowed and connections stay open, as on a network that dropped every packet.
struct Relay {
    address: SocketAddr,
    partitioned: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let partitioned = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&partitioned);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, Arc::clone(&flag)));
                tokio::spawn(pump(server_read, client_write, Arc::clone(&flag)));
            }
        });
        Relay {
            address,
            partitioned,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    fn partition(&self) {
        self.partitioned.store(true, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    partitioned: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if partitioned.load(Ordering::SeqCst) {
            // Hold both ends open and silent.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_its_lease_table_stops_processing_when_its_lease_expires() {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let stream = unique_name("partition");
    let table = unique_name("partition-app");
    create_active_stream(&kinesis, &stream, 1).await;
    let direct_store = lease_store(dynamodb_client(&endpoint), &table);
    direct_store.initialize().await.unwrap();

    // Worker A reaches the lease table through the relay, the stream directly.
    let relay = Relay::start(emulator.local_addr()).await;
    let relayed_store = lease_store(dynamodb_client(&relay.endpoint()), &table);
    let journal_a = Arc::new(Journal::default());
    let worker_a = fast_builder(
        "partition-app",
        &stream,
        kinesis.clone(),
        relayed_store,
        Recorder::factory(Arc::clone(&journal_a)),
        "a",
    )
    .build()
    .unwrap();
    let status_a = worker_a.status();
    let handle_a = worker_a.handle();
    let task_a = spawn(worker_a);
    put_records(&kinesis, &stream, "before", 100).await;
    eventually("worker a processes the first records", || async {
        (journal_a.count() >= 100).then_some(())
    })
    .await;

    relay.partition();
    // Its processor is told of the loss, and the worker's own loop, which must not wait on the
    // hanging table calls of its chores (shard sync, cleanup), shows it holds nothing.
    eventually(
        "worker a's processor is told its lease was lost",
        || async { (!journal_a.lost.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    eventually("worker a to show it holds no shard", || async {
        status_a.shards().is_empty().then_some(())
    })
    .await;
    // Worker B takes the shard once A's lease has expired.
    let journal_b = Arc::new(Journal::default());
    let worker_b = fast_builder(
        "partition-app",
        &stream,
        kinesis.clone(),
        Arc::clone(&direct_store),
        Recorder::factory(Arc::clone(&journal_b)),
        "b",
    )
    .build()
    .unwrap();
    let handle_b = worker_b.handle();
    let task_b = spawn(worker_b);
    eventually("worker b owns the shard", || async {
        let leases = direct_store.list_leases().await.ok()?;
        (leases.len() == 1 && leases[0].lease_owner.as_deref() == Some("b")).then_some(())
    })
    .await;

    put_records(&kinesis, &stream, "after", 100).await;
    eventually("worker b processes the new records", || async {
        let payloads = journal_b.payloads();
        (0..100)
            .all(|i| payloads.contains(&format!("after-{i}")))
            .then_some(())
    })
    .await;
    let zombie: Vec<String> = journal_a
        .payloads()
        .into_iter()
        .filter(|payload| payload.starts_with("after-"))
        .collect();
    assert!(
        zombie.is_empty(),
        "worker a processed {} records of a shard it no longer owned",
        zombie.len()
    );
    assert!(handle_b.shutdown().await);
    task_b.await.unwrap().unwrap();
    // Still cut off, worker a stops when asked: its leases are not released, they expire.
    let stopped = tokio::time::timeout(Duration::from_secs(30), handle_a.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "worker a's shutdown hung on the lease table"
    );
    task_a.await.unwrap().unwrap();
}
