server {
    listen 80;
    server_name app.example.com;
    location / {
        proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        include proxy_params;
    }
}
