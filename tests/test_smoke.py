def test_home(world, client_for):
    c = client_for(world.alice)
    r = c.get("/")
    assert r.status_code == 200, r.content[:2000]
    assert b"Atlantis" not in r.content
    r = c.get("/health/")
    print(r.json())
