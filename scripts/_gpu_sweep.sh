# Temporary device run (not committed). Parallel trainings on one GPU.
mkdir -p /tmp/logs
common="--workers 4 --threads 3 --device cuda --no-eval"
python3 scripts/train_demo.py --out $OUT/demo_lr1e-3.pt --arch demo --lr 1e-3 --steps 1200 --max-seconds 230 --eval-every 200 $common > /tmp/logs/p1.log 2>&1 &
python3 scripts/train_demo.py --out $OUT/demo_lr2e-3.pt --arch demo --lr 2e-3 --steps 1200 --max-seconds 230 --eval-every 200 $common > /tmp/logs/p2.log 2>&1 &
python3 scripts/train_demo.py --out $OUT/tiny_lr1e-3.pt --arch tiny --lr 1e-3 --steps 1200 --max-seconds 230 --eval-every 200 $common > /tmp/logs/p3.log 2>&1 &
python3 scripts/train_demo.py --out /tmp/t1.pt --arch tiny --lr 3e-3 --images 40 --val-images 6 --size 192 192 --steps 250 --eval-every 25 --planes-per-step 2 --objects 8 --corrections 0 $common > /tmp/logs/p4.log 2>&1 &
python3 scripts/train_demo.py --out /tmp/t2.pt --arch tiny --lr 1e-2 --images 40 --val-images 6 --size 192 192 --steps 250 --eval-every 25 --planes-per-step 2 --objects 8 --corrections 0 $common > /tmp/logs/p5.log 2>&1 &
python3 scripts/_gpu_check.py > /tmp/logs/p6.log 2>&1 &
sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv > /tmp/logs/smi.txt; uptime >> /tmp/logs/smi.txt
wait
for f in /tmp/logs/*; do echo "=== $f"; grep -v Warning $f; done > $OUT/logs.txt
cat $OUT/logs.txt | tail -c 6000
