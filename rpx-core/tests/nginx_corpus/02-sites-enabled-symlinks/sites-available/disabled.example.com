server {
    listen 80;
    server_name disabled.example.com;
    location / { return 418; }
}
