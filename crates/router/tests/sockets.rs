//! A service's listening sockets: one `SO_REUSEPORT` socket per worker, within what
//! a graceful upgrade can pass in one message.

mod common;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rampart_core::SystemClock;
use rampart_router::Router;

#[tokio::test]
async fn socket_groups_stay_within_what_a_handover_can_pass() {
    let stable = TestUpstream::start("stable").await;
    let router = Router::empty(Arc::new(SystemClock), NonZeroUsize::new(8).expect("8")).unwrap();
    let add = async |name: String| {
        let mut service = route(settings(), &[&stable], &[], 0.0);
        service.name = name;
        let bound = router.bind(service).await.unwrap();
        router.install(bound).unwrap()
    };
    // 16 services of 8 sockets spend the budget of 128; later ones get one each.
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(add(format!("s{i}")).await);
    }
    assert_eq!(router.listening_sockets().unwrap().len(), 16 * 8 + 4);
    // Every service serves, whatever its group.
    let client = client();
    for handle in [&handles[0], &handles[19]] {
        for _ in 0..20 {
            assert_eq!(
                get(&client, handle.listen_addr(), "/", &[]).await.status,
                200
            );
        }
    }
    // A removed service gives its sockets back to the budget.
    assert!(router.remove("s0", Duration::from_secs(1)).await);
    assert_eq!(router.listening_sockets().unwrap().len(), 15 * 8 + 4);
    // The next one gets what is left of it.
    add("again".into()).await;
    assert_eq!(router.listening_sockets().unwrap().len(), 15 * 8 + 4 + 4);
    router.shutdown(Duration::from_secs(1)).await;
}
