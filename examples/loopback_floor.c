// The loopback floor of issue 5 (examples/BENCHMARKS.md): how fast ANY server could deliver one
// WebSocket frame to N sockets on this machine. Build and run (N, writer threads, rounds, port):
//   cc -O2 -pthread examples/loopback_floor.c -o /tmp/loopback_floor && /tmp/loopback_floor 1000 2 30 19300
// Lower bound: 1 writer process (1 or 2 threads) writes one ~150-byte WebSocket text frame to
// each of N loopback TCP sockets; a reader process (1 thread, epoll) timestamps arrivals.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdatomic.h>

static long long now_ns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static int N=1000, ROUNDS=30, WTHREADS=1, PORT=19300;
struct shared { atomic_int ready; atomic_int round_done[256]; long long t0[256]; long long arr[256][10000]; };
static struct shared *sh;
static int *wfds;
static unsigned char frame[150];
struct wa { int from, to; };
static void *writer(void *p){ struct wa *a=p; for(int i=a->from;i<a->to;i++){ if(write(wfds[i],frame,sizeof frame)!=sizeof frame){perror("write");exit(1);} } return 0; }
static int cmp(const void*a,const void*b){long long x=*(long long*)a,y=*(long long*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  if(argc>1)N=atoi(argv[1]); if(argc>2)WTHREADS=atoi(argv[2]); if(argc>3)ROUNDS=atoi(argv[3]); if(argc>4)PORT=atoi(argv[4]);
  frame[0]=0x81; frame[1]=148; const char*txt="{\"@type\":\"StateChange\",\"changed\":{\"a1\":{\"Mailbox\":\"s00000000000000a7\"}},\"pushState\":\"1.a7-3.5\"}";
  memset(frame+2,' ',148); memcpy(frame+2,txt,strlen(txt));
  sh=mmap(0,sizeof *sh,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  int ls=socket(AF_INET,SOCK_STREAM,0); int one=1; setsockopt(ls,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
  struct sockaddr_in ad={.sin_family=AF_INET,.sin_port=htons(PORT)}; ad.sin_addr.s_addr=htonl(0x7f000001);
  if(bind(ls,(void*)&ad,sizeof ad)){perror("bind");return 1;} listen(ls,4096);
  pid_t child=fork();
  if(child==0){ // reader
    int ep=epoll_create1(0); int *fds=malloc(N*sizeof(int));
    for(int i=0;i<N;i++){ fds[i]=socket(AF_INET,SOCK_STREAM,0); if(connect(fds[i],(void*)&ad,sizeof ad)){perror("connect");exit(1);} fcntl(fds[i],F_SETFL,O_NONBLOCK);
      struct epoll_event ev={.events=EPOLLIN,.data.u32=i}; epoll_ctl(ep,EPOLL_CTL_ADD,fds[i],&ev);} 
    atomic_store(&sh->ready,1);
    char buf[4096]; struct epoll_event evs[256]; int round=0,got=0;
    while(round<ROUNDS){ int n=epoll_wait(ep,evs,256,-1);
      for(int k=0;k<n;k++){ int i=evs[k].data.u32; ssize_t r=read(fds[i],buf,sizeof buf); long long t=now_ns(); if(r>0){ sh->arr[round][i]=t; got++; } }
      if(got>=N){ atomic_store(&sh->round_done[round],1); round++; got=0; } }
    exit(0);
  }
  wfds=malloc(N*sizeof(int));
  for(int i=0;i<N;i++){ wfds[i]=accept(ls,0,0); setsockopt(wfds[i],IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);} 
  while(!atomic_load(&sh->ready)) usleep(1000);
  usleep(200000);
  for(int r=0;r<ROUNDS;r++){
    pthread_t th[8]; struct wa args[8];
    sh->t0[r]=now_ns();
    if(WTHREADS==1){ args[0]=(struct wa){0,N}; writer(&args[0]); }
    else { for(int t=0;t<WTHREADS;t++){ args[t]=(struct wa){N*t/WTHREADS,N*(t+1)/WTHREADS}; pthread_create(&th[t],0,writer,&args[t]);} for(int t=0;t<WTHREADS;t++) pthread_join(th[t],0);} 
    long long tw=now_ns()-sh->t0[r];
    while(!atomic_load(&sh->round_done[r])) usleep(100);
    if(r<3) fprintf(stderr,"round %d write loop %.2f ms\n",r,tw/1e6);
    usleep(20000);
  }
  waitpid(child,0,0);
  long long *all=malloc(sizeof(long long)*N*ROUNDS); long long *last=malloc(sizeof(long long)*ROUNDS); int m=0;
  for(int r=0;r<ROUNDS;r++){ long long mx=0; for(int i=0;i<N;i++){ long long d=sh->arr[r][i]-sh->t0[r]; all[m++]=d; if(d>mx)mx=d;} last[r]=mx; }
  qsort(all,m,sizeof *all,cmp); qsort(last,ROUNDS,sizeof *last,cmp);
  printf("N=%d writer_threads=%d rounds=%d: p50 %.3f ms p90 %.3f ms p99 %.3f ms max %.3f ms; last socket per round p50 %.3f ms\n",N,WTHREADS,ROUNDS,
    all[m/2]/1e6, all[m*9/10]/1e6, all[m*99/100]/1e6, all[m-1]/1e6, last[ROUNDS/2]/1e6);
  return 0;
}
