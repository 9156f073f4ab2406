use month_lock_tests::server;

#[tokio::test]
async fn three_workers_one_month_exactly_one_wins() {
    let db = server().await.fresh_db("three_workers").await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(db.connect().await);
    }
    let mut wins = 0;
    for w in &workers {
        let got: bool = w.query_one("SELECT month_lock_try(2020, 1)", &[]).await.unwrap().get(0);
        wins += got as i32;
    }
    assert_eq!(wins, 1);
}
